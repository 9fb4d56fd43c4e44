"""Frozen-representation regression: a backbone's representation of every structure, computed once, then a
small regressor trained on it under the paper's protocol and the held-out protocol.

The representation of each structure (:meth:`kappaflow.backbones.base.Backbone.represent`) is stored as
parquet (``id, dataset, formula, target, features``) beside a quarantine of the structures the backbone
cannot take; the regressor is scikit-learn's histogram gradient-boosted trees on log10 κ, fitted in seconds
instead of the hours a fine-tuning takes. The protocols are those of the forest
(:func:`kappaflow.baseline.paper_protocol_predictions`, :func:`kappaflow.heldout.heldout_predictions`) on
every validated material, so splits and folds, and thus the pairing by seed and fold with the fine-tuned
networks, do not depend on which structures a backbone rejected; those are left out of fitting and prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from sklearn.ensemble import HistGradientBoostingRegressor

from kappaflow.baseline import FitPredict, paper_protocol_predictions, read_materials
from kappaflow.graphs import record_to_structure
from kappaflow.heldout import heldout_predictions

if TYPE_CHECKING:
    from kappaflow.backbones import Backbone

log = logging.getLogger(__name__)

#: Columns of a representation table; ``features``: one list of floats per structure.
REPRESENTATION_COLUMNS = ["id", "dataset", "formula", "target", "features"]
REJECTED_COLUMNS = ["id", "reason"]
#: Structures built and represented per block (memory stays flat with the number of structures).
BLOCK = 256
#: Step name of the frozen-representation predictions.
FROZEN_STEP = "frozen"
PAPER_COLUMNS = ["step", "backbone", "train_on", "run", "test_on", "id", "formula", "kappa_true",
                 "kappa_pred", "status", "fit_s"]
HELDOUT_COLUMNS = ["step", "backbone", "train_on", "fold", "seed", "id", "formula", "kappa_true",
                   "kappa_pred", "status", "fit_s"]
Rejected = list[dict[str, str]]


def screen(block: pd.DataFrame, backbone: Backbone) -> tuple[list[int], list[Structure], Rejected]:
    """Positions (in ``block``) and structures the backbone supports, and the other rows with their reason."""
    kept, structures, rejected = [], [], []
    for position, record in enumerate(block.to_dict("records")):
        try:
            structure = record_to_structure(record)
            reason = backbone.supports(structure)
        except Exception as error:  # noqa: BLE001 (one odd structure must not stop the others)
            reason = f"cannot build its structure ({type(error).__name__}: {error})"
        if reason:
            rejected.append({"id": record["id"], "reason": reason})
        else:
            kept.append(position)
            structures.append(structure)
    return kept, structures, rejected


def _represent_block(
    block: pd.DataFrame, backbone: Backbone, batch_size: int
) -> tuple[pd.DataFrame, Rejected]:
    """Representation rows of one block's supported structures, and its rejected rows."""
    kept, structures, rejected = screen(block, backbone)
    features = np.asarray(backbone.represent(structures, batch_size), dtype=np.float64)
    if features.shape != (len(kept), backbone.spec.representation_dim):
        raise RuntimeError(f"{len(kept)} structures gave representations of shape {features.shape}")
    rows = block.iloc[kept]
    frame = pd.DataFrame(
        {
            "id": rows["id"].to_numpy(), "dataset": rows["dataset"].to_numpy(),
            "formula": rows["formula"].to_numpy(), "target": rows["target"].to_numpy(dtype=float),
            "features": list(features),
        },
        columns=REPRESENTATION_COLUMNS,
    )
    return frame, rejected


def represent_file(
    data: str | Path, backbone: Backbone, output: str | Path, rejected_out: str | Path, batch_size: int
) -> tuple[int, int]:
    """Represent every structure of a validated data parquet with ``backbone``; (represented, rejected).

    Rows in = represented + rejected, asserted: a structure the backbone does not support, or that cannot
    be rebuilt, is a row of ``rejected_out`` (CSV ``id, reason``), never dropped silently.
    """
    table = pd.read_parquet(data)
    frames, rejected = [], []
    for start in range(0, len(table), BLOCK):
        frame, refused = _represent_block(table.iloc[start:start + BLOCK], backbone, batch_size)
        frames.append(frame)
        rejected += refused
    empty = pd.DataFrame(columns=REPRESENTATION_COLUMNS)
    represented = pd.concat(frames, ignore_index=True) if frames else empty
    if len(represented) + len(rejected) != len(table):
        raise RuntimeError(f"{data}: {len(table)} rows in but {len(represented)} represented "
                           f"+ {len(rejected)} rejected")
    for path in (output, rejected_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    represented.to_parquet(output, index=False)
    pd.DataFrame(rejected, columns=REJECTED_COLUMNS).to_csv(rejected_out, index=False)
    log.info("%s: %d represented, %d rejected", data, len(represented), len(rejected))
    return len(represented), len(rejected)


def make_regressor(
    seed: int, max_iter: int, learning_rate: float, min_samples_leaf: int
) -> HistGradientBoostingRegressor:
    """Histogram gradient-boosted trees (scikit-learn), ``max_iter`` of them: no early stopping."""
    return HistGradientBoostingRegressor(
        max_iter=max_iter, learning_rate=learning_rate, min_samples_leaf=min_samples_leaf,
        early_stopping=False, random_state=seed,
    )


def fit_predict_features(
    train: pd.DataFrame,
    test: pd.DataFrame,
    seed: int,
    max_iter: int,
    learning_rate: float,
    min_samples_leaf: int,
) -> np.ndarray:
    """Fit on the training rows' features (log10 κ) and predict κ (W/mK) of the test rows."""
    kappa = train["target"].to_numpy(dtype=float)
    if len(kappa) < 2 or (kappa <= 0).any() or not np.isfinite(kappa).all():
        raise ValueError(f"frozen regression needs ≥ 2 finite, positive training κ, got {len(kappa)} rows")
    model = make_regressor(seed, max_iter, learning_rate, min_samples_leaf)
    model.fit(np.stack(train["features"].to_numpy()), np.log10(kappa))
    if len(test) == 0:
        return np.zeros(0)
    return 10.0 ** model.predict(np.stack(test["features"].to_numpy()))


def has_features(frame: pd.DataFrame) -> np.ndarray:
    """Whether each row has a representation."""
    return frame["features"].notna().to_numpy()


def gradient_boosting(max_iter: int, learning_rate: float, min_samples_leaf: int) -> FitPredict:
    """The trees as a protocol regressor: rows without features are left out of fitting and get κ NaN."""

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> np.ndarray:
        known = has_features(test)
        kappa = np.full(len(test), np.nan)
        kappa[known] = fit_predict_features(train[has_features(train)], test[known], seed,
                                            max_iter, learning_rate, min_samples_leaf)
        return kappa

    return fit_predict


def frozen_materials(
    data_paths: Mapping[str, str | Path], representation_paths: Mapping[str, str | Path], backbone: str
) -> dict[str, pd.DataFrame]:
    """Every validated material per dataset key (``id, formula, target``) with its ``features``, missing (NA)
    where ``backbone`` rejected the structure; logs how many are missing."""
    materials = {}
    for key, path in data_paths.items():
        data = read_materials(path)
        features = pd.read_parquet(representation_paths[key], columns=["id", "features"])
        strangers = set(features["id"]) - set(data["id"])
        if strangers:
            raise ValueError(f"{representation_paths[key]}: {len(strangers)} ids are not in {path}, "
                             f"e.g. {sorted(strangers)[:3]}")
        table = data.merge(features, on="id", how="left", validate="one_to_one")
        missing = int((~has_features(table)).sum())
        log.log(logging.WARNING if missing else logging.INFO,
                "%s: %d of %d materials have no %s representation; left out of fitting and prediction",
                key, missing, len(table), backbone)
        materials[key] = table
    return materials


def _predicted(frame: pd.DataFrame, backbone: str, columns: Sequence[str]) -> pd.DataFrame:
    """Rows with a prediction (a representation), with the ``backbone`` column, in ``columns`` order."""
    return frame[frame["kappa_pred"].notna()].assign(backbone=backbone)[list(columns)].reset_index(drop=True)


def write_frozen_protocols(
    data_paths: Mapping[str, str | Path],
    representation_paths: Mapping[str, str | Path],
    train_sets: Sequence[str],
    test_sets: Sequence[str],
    seeds: Sequence[int],
    val_fraction: float,
    heldout_sets: Sequence[str],
    folds: int,
    fold_seed: int,
    regressor: Mapping[str, Any],
    backbone: str,
    paper_out: str | Path,
    heldout_out: str | Path,
) -> None:
    """Frozen regression of one backbone under the paper's protocol and the held-out protocol, written to
    ``paper_out`` (:data:`PAPER_COLUMNS`) and ``heldout_out`` (:data:`HELDOUT_COLUMNS`).

    ``data_paths``: validated data parquet per dataset key (their ids are the split universe);
    ``representation_paths``: the backbone's representation table per key (:func:`represent_file`);
    ``regressor``: ``max_iter, learning_rate, min_samples_leaf``. ``fit_s`` is the wall time of fitting
    the row's model and predicting its test rows.
    """
    materials = frozen_materials(data_paths, representation_paths, backbone)
    trees = gradient_boosting(
        regressor["max_iter"], regressor["learning_rate"], regressor["min_samples_leaf"]
    )
    paper = paper_protocol_predictions(
        materials, train_sets, test_sets, seeds, val_fraction, trees, FROZEN_STEP
    )
    heldout = heldout_predictions(
        materials, heldout_sets, folds, fold_seed, val_fraction, trees, FROZEN_STEP
    )
    for frame, columns, path in ((paper, PAPER_COLUMNS, paper_out), (heldout, HELDOUT_COLUMNS, heldout_out)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _predicted(frame, backbone, columns).to_parquet(path, index=False)
