"""Read trained runs: ``run.json`` and ``predictions.parquet`` of every run directory.

A run whose ``run.json`` status is not ``"ok"`` is failed. As a safety net a run marked ``"ok"``
whose predictions say otherwise (:func:`kappaflow.protocol.prediction_status`: non-finite or constant)
is re-marked, with a warning, so that no failed run is averaged in silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kappaflow.domain import DOMAIN_COLUMNS
from kappaflow.protocol import OK, prediction_status, unphysical

log = logging.getLogger(__name__)

#: Columns of a run's ``predictions.parquet`` (domain columns: against the run's own training split).
PREDICTION_COLUMNS = ["step", "train_on", "run", "test_on", "id", "formula", "kappa_true", "kappa_pred", "unphysical",
                      "unseen_elements", *DOMAIN_COLUMNS]
#: ``run.json`` keys copied into the run frame as they are (absent in older runs: empty);
#: ``collapsed_at_epoch``: first epoch of the constant predictions a collapsed run ended with
#: (:mod:`kappaflow.training.health`).
_META_COLUMNS = ("best_epoch", "best_val_loss", "collapsed_at_epoch", "wall_s", "n_train", "n_val")
#: Per-run columns of ``runs.csv``.
RUN_COLUMNS = ["step", "train_on", "run", "status", *_META_COLUMNS]


def effective_status(status: str, kappa_pred: np.ndarray) -> str:
    """The run.json status, overridden when the predictions show a diverged or collapsed run."""
    if status != OK or np.asarray(kappa_pred).size == 0:
        return status
    return prediction_status(kappa_pred)


def read_run(run_json: str | Path) -> tuple[dict[str, object], pd.DataFrame]:
    """One run's metadata and predictions (``predictions.parquet`` beside ``run.json``)."""
    run_json = Path(run_json)
    meta = json.loads(run_json.read_text())
    pred_path = run_json.parent / "predictions.parquet"
    if not pred_path.exists():
        raise FileNotFoundError(f"run {run_json.parent} has a run.json but no predictions.parquet")
    predictions = pd.read_parquet(pred_path)
    if "unphysical" not in predictions:  # written before the flag existed
        predictions["unphysical"] = unphysical(predictions["kappa_pred"])
    missing = set(PREDICTION_COLUMNS) - set(predictions.columns)
    if missing:
        raise ValueError(f"{pred_path} lacks the columns {sorted(missing)}")
    return meta, predictions[PREDICTION_COLUMNS]


def collect_runs(run_jsons: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All runs: a frame of run metadata (``RUN_COLUMNS``) and all predictions with a ``status`` column."""
    runs, frames = [], []
    for path in run_jsons:
        meta, predictions = read_run(path)
        status = str(meta.get("status", OK))
        checked = effective_status(status, predictions["kappa_pred"].to_numpy())
        if checked != status:
            log.warning("run %s is marked %r but its predictions look %s", Path(path).parent, status, checked)
        run = predictions["run"].iloc[0] if len(predictions) else meta.get("seed")
        runs.append(
            {
                "step": meta["step"],
                "train_on": meta["train_on"],
                "run": int(run),
                "status": checked,
                **{key: meta.get(key) for key in _META_COLUMNS},
            }
        )
        frames.append(predictions.assign(status=checked))
        if checked != OK:
            log.warning("run %s excluded from the means: status %s", Path(path).parent, checked)
    run_frame = pd.DataFrame(runs, columns=RUN_COLUMNS)
    pred_frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*PREDICTION_COLUMNS, "status"])
    )
    return run_frame, pred_frame
