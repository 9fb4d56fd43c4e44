"""Run options taken from the config's ``training`` section, shared by the training and held-out rules.

Light on purpose (no torch import): the Snakefile calls :func:`spec_options` while building the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: :class:`kappaflow.training.runner.RunSpec` fields set from ``training`` under the same names
#: (``epochs`` and ``test_sets`` differ per rule and are set there).
CONFIG_OPTIONS = (
    "batch_size",
    "lr",
    "lr_decay_epochs",
    "lr_min_factor",
    "head_hidden",
    "freeze_backbone",
    "val_fraction",
    "collapse_patience",
    "target",
    "loss",
    "grad_clip_norm",
)


def spec_options(training: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`CONFIG_OPTIONS` of a validated ``training`` config section."""
    return {name: training[name] for name in CONFIG_OPTIONS}
