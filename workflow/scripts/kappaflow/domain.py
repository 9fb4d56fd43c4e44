"""Applicability domain: how far a material lies from the training materials, in the networks' own representation.

Each member network of an ensemble maps a structure to its backbone features (``KappaNet.features``). The
ensemble's representation of a material is the concatenation over members of those features, each
standardised with the mean and std over the reference (training) materials and divided by √(members), so
that every member weighs the same. Distances are Euclidean there, in units of the reference's own spacing:
the median distance from a training material to its nearest other training material. The unit is the same
for every ensemble, so a threshold found on held-out folds (:mod:`kappaflow.calibration`) applies to the
ensemble trained on all the data. A training material is at distance 0 from itself.

Per-run features are stored as parquet (``id, formula, kappa_wmk, part, features``: the run's part of the
material, ``train``, ``val`` or, in a held-out fold, ``test``, and one list of floats per material); :func:`domain_frame` joins the runs of an ensemble into its ``domain.parquet``
(``id, formula, kappa_wmk, features_<run>...``), which ``kappaflow predict`` reads beside the checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

#: Columns of a domain table besides the per-run feature columns.
MATERIAL_COLUMNS = ["id", "formula", "kappa_wmk"]
#: Domain columns of every prediction (``nearest_*`` of the closest training material).
DOMAIN_COLUMNS = ["nearest_id", "nearest_formula", "nearest_kappa_wmk", "nearest_distance"]
FEATURES_PREFIX = "features_"


@dataclass(frozen=True)
class Reference:
    """The training materials of an ensemble in its representation, ready for nearest-neighbour queries."""

    ids: np.ndarray
    formulas: np.ndarray
    kappa: np.ndarray
    center: np.ndarray  # (members, d)
    spread: np.ndarray  # (members, d)
    spacing: float
    tree: cKDTree

    def __len__(self) -> int:
        return len(self.ids)


def embed(features: np.ndarray, center: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Points ``(n, members·d)`` from per-member features ``(members, n, d)`` (see the module docstring)."""
    members, n, d = features.shape
    z = (features - center[:, None, :]) / spread[:, None, :]
    return np.transpose(z, (1, 0, 2)).reshape(n, members * d) / math.sqrt(members)


def build_reference(
    ids: Sequence[str], formulas: Sequence[str], kappa: Sequence[float], features: np.ndarray
) -> Reference:
    """The reference of training materials with per-member features ``(members, n, d)``.

    Raises:
        ValueError: fewer than two materials, or most of them share one point (no spacing to measure).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3 or features.shape[1] != len(ids):
        raise ValueError(f"features must be (members, {len(ids)} materials, d), got {features.shape}")
    if len(ids) < 2:
        raise ValueError(f"a domain needs at least 2 training materials, got {len(ids)}")
    center = features.mean(axis=1)
    spread = features.std(axis=1)
    spread[spread == 0] = 1.0  # a constant feature separates nothing
    points = embed(features, center, spread)
    tree = cKDTree(points)
    spacing = float(np.median(tree.query(points, k=2)[0][:, 1]))
    if not spacing > 0:
        raise ValueError("most training materials share one point of the representation: no spacing to measure")
    return Reference(np.asarray(ids, dtype=object), np.asarray(formulas, dtype=object),
                     np.asarray(kappa, dtype=np.float64), center, spread, spacing, tree)


def nearest(reference: Reference, features: np.ndarray) -> pd.DataFrame:
    """:data:`DOMAIN_COLUMNS` of materials with per-member features ``(members, n, d)`` (same members, same order)."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape[1] == 0:
        return pd.DataFrame(columns=DOMAIN_COLUMNS)
    distance, index = reference.tree.query(embed(features, reference.center, reference.spread), k=1)
    return pd.DataFrame(
        {
            "nearest_id": reference.ids[index],
            "nearest_formula": reference.formulas[index],
            "nearest_kappa_wmk": reference.kappa[index],
            "nearest_distance": distance / reference.spacing,
        }
    )


def unseen_elements(structure_elements: Iterable[str], learned: Iterable[str] | None) -> str | None:
    """Comma-separated elements absent from ``learned`` (``""``: none; None: what was learned is not recorded)."""
    if learned is None:
        return None
    return ",".join(sorted(set(structure_elements) - set(learned)))


# --- per-run feature tables and the ensemble's domain table ----------------------------------


def features_frame(
    ids: Sequence[str], formulas: Sequence[str], kappa: Sequence[float], part: Sequence[str], features: np.ndarray
) -> pd.DataFrame:
    """One run's features ``(n, d)`` of materials as a table (``id, formula, kappa_wmk, part, features``)."""
    return pd.DataFrame(
        {
            "id": np.asarray(ids, dtype=str),
            "formula": np.asarray(formulas, dtype=str),
            "kappa_wmk": np.asarray(kappa, dtype=np.float64),
            "part": np.asarray(part, dtype=str),
            "features": list(np.asarray(features, dtype=np.float64)),
        }
    )


def stacked_features(frames: Sequence[pd.DataFrame], column: str | Sequence[str] = "features") -> np.ndarray:
    """``(members, n, d)`` from tables whose rows are the same materials in the same order."""
    columns = [column] * len(frames) if isinstance(column, str) else list(column)
    return np.stack([np.stack(frame[name].to_numpy()) for frame, name in zip(frames, columns, strict=True)])


def domain_frame(run_features: Mapping[str, str | Path | pd.DataFrame]) -> pd.DataFrame:
    """The ensemble's domain table from each run's feature table (``{run name: file or table}``), in the first
    run's order of materials (runs whose split ordered them otherwise are aligned by id).

    Raises:
        ValueError: the runs' tables do not hold the same materials.
    """
    frames = {run: table if isinstance(table, pd.DataFrame) else pd.read_parquet(table)
              for run, table in run_features.items()}
    if not frames:
        raise ValueError("an ensemble's domain needs at least one run")
    first_run, first = next(iter(frames.items()))
    domain = first[MATERIAL_COLUMNS].reset_index(drop=True)
    for run, frame in frames.items():
        if sorted(frame["id"]) != sorted(domain["id"]):
            raise ValueError(f"run {run} holds other materials than run {first_run}")
        domain[f"{FEATURES_PREFIX}{run}"] = frame.set_index("id").loc[domain["id"], "features"].to_numpy()
    return domain


def reference_of(domain: pd.DataFrame, runs: Sequence[str]) -> Reference:
    """The :class:`Reference` of a domain table for the ensemble members ``runs`` (in that order).

    Raises:
        ValueError: a run has no feature column (the domain table was built for other runs).
    """
    missing = [run for run in runs if f"{FEATURES_PREFIX}{run}" not in domain.columns]
    if missing:
        raise ValueError(f"the domain table has no features of run(s) {', '.join(missing)}")
    features = stacked_features([domain] * len(runs), [f"{FEATURES_PREFIX}{run}" for run in runs])
    return build_reference(domain["id"], domain["formula"], domain["kappa_wmk"], features)
