"""Health of a training run: diverged (non-finite), collapsed (constant predictions), and when it collapsed.

A network whose validation predictions are all the same value has collapsed (e.g. every ReLU of the
head dead): its gradients no longer reach anything but the last biases, and it does not recover.
The original ParAIsite code lost two of nine stage-1 runs that way within two epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from kappaflow.protocol import COLLAPSE_REL_STD, COLLAPSED, DIVERGED, prediction_status

#: History column holding each epoch's relative spread of validation predictions.
SPREAD_COLUMN = "val_pred_rel_std"


def run_status(diverged: bool, val_pred: np.ndarray, collapsed_at: int | None = None) -> str:
    """``diverged`` (non-finite loss or predictions), ``collapsed`` or ``ok``.

    ``val_pred``: the kept model's validation predictions (:func:`kappaflow.protocol.prediction_status`).
    ``collapsed_at``: :func:`collapsed_since` of the history; a run whose network ended collapsed is
    ``collapsed`` even when its kept checkpoint is from before, as a diverged run is: it did not train as
    the protocol says, and its checkpoint is often from the first epochs.
    """
    status = prediction_status(val_pred)
    if diverged:
        return DIVERGED
    return COLLAPSED if collapsed_at is not None and status != DIVERGED else status


def collapsed_since(history: Sequence[dict[str, float]]) -> int | None:
    """First epoch of the run of epochs, up to the last one, whose validation predictions were constant.

    ``None`` when the last epoch's predictions were not constant (or the history has no spread, as
    in checkpoints written before it was recorded).
    """
    since = None
    for row in reversed(history):
        spread = row.get(SPREAD_COLUMN, math.nan)
        if not (math.isfinite(spread) and spread < COLLAPSE_REL_STD):
            break
        since = int(row["epoch"])
    return since
