"""kappaflow.training.health: run status and the epoch a run collapsed at."""

from __future__ import annotations

import math

import numpy as np
from kappaflow.protocol import COLLAPSE_REL_STD, relative_spread
from kappaflow.training.health import collapsed_since, run_status


def test_run_status():
    assert run_status(False, np.array([1.0, 2.0, 3.0])) == "ok"
    assert run_status(False, np.full(5, 2.5)) == "collapsed"
    assert run_status(False, np.array([2.5, 2.5 * (1 + 1e-9)])) == "collapsed"
    assert run_status(False, np.array([1.0, np.nan])) == "diverged"
    assert run_status(True, np.array([1.0, 2.0])) == "diverged"
    # the kept model varies, but the network ended collapsed (since epoch 4)
    assert run_status(False, np.array([1.0, 2.0]), collapsed_at=4) == "collapsed"
    assert run_status(False, np.array([1.0, 2.0]), collapsed_at=None) == "ok"


def test_relative_spread():
    assert relative_spread(np.array([1.0, 3.0])) == 0.5
    assert math.isnan(relative_spread(np.array([])))
    assert math.isnan(relative_spread(np.array([1.0, np.inf])))


def _history(spreads):
    return [{"epoch": epoch, "val_pred_rel_std": spread} for epoch, spread in enumerate(spreads)]


def test_collapsed_since_finds_the_trailing_constant_stretch():
    flat = COLLAPSE_REL_STD / 10
    assert collapsed_since(_history([0.3, 0.2, flat, flat])) == 2
    assert collapsed_since(_history([flat, flat])) == 0
    assert collapsed_since(_history([0.3, flat, 0.2])) is None  # recovered: not collapsed now
    assert collapsed_since(_history([0.3, flat, math.nan])) is None  # NaN spread is divergence, not collapse
    assert collapsed_since([{"epoch": 0, "train_loss": 1.0}]) is None  # history without spreads
    assert collapsed_since([]) is None
