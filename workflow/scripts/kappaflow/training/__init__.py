"""Training: splits, target scaling, data, the Lightning module, the runner, checkpoints, prediction.

Public entry points: :func:`kappaflow.training.runner.train_run`,
:func:`kappaflow.training.checkpoint.load_trained` and :func:`kappaflow.training.predict.predict_kappa`.
"""

from __future__ import annotations
