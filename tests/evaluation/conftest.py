"""Synthetic runs in the training engineer's on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TEST_SETS = ("Dataset1", "Dataset2", "MIX", "AFLOW")


def write_run(root: Path, step: str, train_on: str, seed: int, status: str, rel_error: float,
              constant: bool = False, epochs: int = 3, collapsed_at_epoch: int | None = None) -> Path:
    """One run directory with run.json, predictions.parquet (κ_pred = κ_true·(1+rel_error)) and metrics.csv."""
    run_dir = root / f"step{step}" / train_on / f"run{seed}"
    run_dir.mkdir(parents=True)
    rows = []
    for t, test_on in enumerate(TEST_SETS):
        true = np.array([1.0, 2.0, 4.0, 10.0]) * (t + 1)
        pred = np.full_like(true, 3.0) if constant else true * (1.0 + rel_error)
        for i, (kt, kp) in enumerate(zip(true, pred, strict=True)):
            rows.append({"step": step, "train_on": train_on, "run": seed, "test_on": test_on, "id": f"{test_on}-{i}",
                         "formula": "NaCl", "kappa_true": kt, "kappa_pred": kp,
                         "unseen_elements": "Pu" if test_on == "AFLOW" and i == 0 else "",
                         "nearest_id": f"train-{i}", "nearest_formula": "KCl", "nearest_kappa_wmk": 1.0,
                         "nearest_distance": 0.5 * i})
    pd.DataFrame(rows).to_parquet(run_dir / "predictions.parquet")
    meta = {"step": step, "train_on": train_on, "seed": seed, "status": status, "best_epoch": 1,
            "best_val_loss": rel_error, "wall_s": 1.0, "n_train": 8, "n_val": 2, "scaler": {"mean": 0.5, "std": 0.2}}
    if collapsed_at_epoch is not None:
        meta["collapsed_at_epoch"] = collapsed_at_epoch
    (run_dir / "run.json").write_text(json.dumps(meta))
    epoch = np.arange(epochs)
    pd.DataFrame({"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "val_loss": 1.2 / (epoch + 1),
                  "lr": 1e-3}).to_csv(run_dir / "metrics.csv", index=False)
    return run_dir / "run.json"


@pytest.fixture
def make_run():
    """The :func:`write_run` factory."""
    return write_run


@pytest.fixture
def synthetic_runs(tmp_path: Path) -> list[Path]:
    """Step I on Dataset1: seeds 1, 2 ok (MAPE 0.1, 0.3), seed 3 collapsed; step II on MIX: seeds 1, 2 ok."""
    root = tmp_path / "models"
    return [
        write_run(root, "I", "Dataset1", 1, "ok", 0.1),
        write_run(root, "I", "Dataset1", 2, "ok", 0.3),
        write_run(root, "I", "Dataset1", 3, "collapsed", 5.0, constant=True),
        write_run(root, "II", "MIX", 1, "ok", 0.2),
        write_run(root, "II", "MIX", 2, "ok", -0.2),
    ]
