"""How far an ensemble's predictions can be trusted: its domain and calibration files, and the columns they give.

Beside an ensemble's runs (``results/models/step{step}/{train_on}/``) the workflow writes (rule
``ensemble_trust``):

- ``domain.parquet``: every training material in each usable run's representation (:mod:`kappaflow.domain`);
- ``trust.json``: the calibration factor of the ensemble spread and the domain's distance threshold, both
  from the held-out folds of the same step and set (:mod:`kappaflow.calibration`), or why there are none.

:func:`trust_columns` turns an ensemble's member predictions and features into the columns that
``kappaflow predict`` and the scan report: the calibrated ±1σ interval (:data:`INTERVAL_COLUMNS`), the
closest training material (:data:`kappaflow.domain.DOMAIN_COLUMNS`) and ``in_domain``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kappaflow.domain import DOMAIN_COLUMNS, MATERIAL_COLUMNS, Reference, domain_frame, nearest, reference_of
from kappaflow.protocol import FAILED_STATUSES

#: ``kappa_low_wmk``/``kappa_high_wmk``: mean κ × 10^(∓ s·σ), σ the members' std of log10 κ, s the calibration
#: factor (1 when not calibrated); ``calibration_note``: empty when calibrated, else why not.
INTERVAL_COLUMNS = ["kappa_low_wmk", "kappa_high_wmk", "calibrated", "calibration_note"]
#: Every column :func:`trust_columns` returns.
TRUST_COLUMNS = [*INTERVAL_COLUMNS, *DOMAIN_COLUMNS, "in_domain"]
DOMAIN_FILE, TRUST_FILE = "domain.parquet", "trust.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trust:
    """An ensemble's domain reference and calibration (all None/False when its folder holds no trust files)."""

    reference: Reference | None
    scale: float | None
    domain_threshold: float | None
    calibration_note: str
    domain_note: str

    @property
    def calibrated(self) -> bool:
        """Whether a held-out calibration factor exists."""
        return self.scale is not None


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def write_ensemble_trust(
    run_jsons: Sequence[str | Path], run_features: Sequence[str | Path], calibrations: Mapping[str, Any] | None,
    uncalibrated_reason: str, domain_out: str | Path, trust_out: str | Path,
) -> dict[str, Any]:
    """Write ``domain.parquet`` (usable runs only) and ``trust.json`` of one ensemble; return the latter.

    ``run_jsons`` and ``run_features``: every run of the ensemble, in the same order; ``calibrations``: the
    held-out calibration records by ``step<step>/<train_on>`` (:func:`kappaflow.calibration.trust_records`: for
    MEGNet ``results/heldout/trust.json``, for another backbone its own held-out folds) when they cover this
    ensemble, else None with ``uncalibrated_reason`` saying why. An ensemble whose every run collapsed or
    diverged gets ``runs: []``, notes saying so and a domain table of its materials without features (the
    tables still report the ensemble; ``kappaflow predict`` refuses it).
    """
    metas = [json.loads(Path(path).read_text()) for path in run_jsons]
    usable = {f"run{meta['seed']}": features for meta, features in zip(metas, run_features, strict=True)
              if meta.get("status", "ok") not in FAILED_STATUSES}
    key = f"step{metas[0]['step']}/{metas[0]['train_on']}"
    name = f"{metas[0]['backbone']}/{key}" if metas[0].get("backbone") else key
    record: dict[str, Any] = {"ensemble": name, "runs": list(usable)}
    calibration = None if calibrations is None else calibrations.get(key)
    if not usable:
        reason = f"no usable run: all {len(metas)} runs collapsed or diverged"
        log.warning("%s: %s", name, reason)
        record |= {"scale": None, "calibration_note": reason, "domain_threshold": None, "domain_note": reason}
    elif calibration is None:
        reason = uncalibrated_reason or f"no held-out calibration of {name}"
        record |= {"scale": None, "calibration_note": reason, "domain_threshold": None, "domain_note": reason}
    else:
        scale = _number(calibration.get("scale"))
        record |= {key_: calibration.get(key_) for key_ in
                   ("coverage_1sigma", "coverage_2sigma", "raw_coverage_1sigma", "raw_coverage_2sigma", "folds",
                    "n_usable")}
        record |= {
            "scale": scale,
            "calibration_note": "" if scale is not None else "the held-out folds gave no calibration factor",
            "domain_threshold": _number(calibration.get("domain_threshold")),
            "domain_note": calibration.get("domain_note", ""),
        }
    for path in (domain_out, trust_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    domain = domain_frame(usable) if usable else pd.read_parquet(run_features[0])[MATERIAL_COLUMNS]
    domain.to_parquet(domain_out, index=False)
    Path(trust_out).write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_trust(model_dir: str | Path, runs: Sequence[str]) -> Trust:
    """The :class:`Trust` of the ensemble in ``model_dir`` for its members ``runs``.

    Without ``domain.parquet`` and ``trust.json`` (a single run's folder, an ensemble copied without them)
    the domain is unknown and the spread uncalibrated, and the notes say so.
    """
    model_dir = Path(model_dir)
    domain_path, trust_path = model_dir / DOMAIN_FILE, model_dir / TRUST_FILE
    if not (domain_path.is_file() and trust_path.is_file()):
        note = (f"no {DOMAIN_FILE} and {TRUST_FILE} in {model_dir} (the workflow writes them beside every "
                "ensemble: rules ensemble_trust and finetune_trust)")
        return Trust(None, None, None, note, note)
    record = json.loads(trust_path.read_text())
    try:
        reference = reference_of(pd.read_parquet(domain_path), runs)
    except ValueError as error:
        note = f"{domain_path}: {error}"
        return Trust(None, None, None, note, note)
    return Trust(reference, _number(record.get("scale")), _number(record.get("domain_threshold")),
                 record.get("calibration_note", ""), record.get("domain_note", ""))


def log_spread(kappa: np.ndarray) -> np.ndarray:
    """Sample std (ddof=1) over members (axis 0) of log10 κ, physical members only; NaN with fewer than 2."""
    logs = np.log10(np.where(kappa > 0, kappa, np.nan))
    counts = np.isfinite(logs).sum(axis=0)
    filled = np.where(np.isfinite(logs), logs, 0.0)
    mean = filled.sum(axis=0) / np.maximum(counts, 1)
    squares = (np.where(np.isfinite(logs), filled - mean, 0.0) ** 2).sum(axis=0)
    return np.where(counts >= 2, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)


def interval(mean: np.ndarray, log_std: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``mean × 10^(∓ scale·log_std)`` (NaN where the mean is not positive or the spread unknown)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.log10(np.where(mean > 0, mean, np.nan))
    return 10 ** (centre - scale * log_std), 10 ** (centre + scale * log_std)


def within_domain(unseen: Sequence[str | None], distance: np.ndarray, threshold: float | None) -> np.ndarray:
    """No unseen element (``""``) and, when the held-out folds set a ``threshold``, a distance within it."""
    known = np.array([u == "" for u in unseen], dtype=bool)
    return known & (np.asarray(distance, dtype=float) <= threshold if threshold is not None else True)


def read_threshold(trust_json: str | Path) -> float | None:
    """The domain threshold an ensemble's ``trust.json`` holds (None: no held-out folds set one)."""
    return _number(json.loads(Path(trust_json).read_text()).get("domain_threshold"))


def trust_columns(
    trust: Trust, kappa: np.ndarray, features: np.ndarray, unseen: Sequence[str | None]
) -> pd.DataFrame:
    """:data:`TRUST_COLUMNS` of materials from the members' κ ``(members, n)`` and features ``(members, n, d)``.

    ``unseen``: each material's elements absent from the training data (``""``: none; None: unknown).
    ``in_domain``: no unseen element and, where the held-out folds set a threshold, a nearest distance within
    it; None when the ensemble has no domain file.
    """
    n = kappa.shape[1]
    low, high = interval(kappa.mean(axis=0), log_spread(kappa), trust.scale if trust.calibrated else 1.0)
    table = pd.DataFrame({"kappa_low_wmk": low, "kappa_high_wmk": high, "calibrated": trust.calibrated,
                          "calibration_note": trust.calibration_note if not trust.calibrated else ""})
    if trust.reference is None:
        table[DOMAIN_COLUMNS] = pd.DataFrame({column: [None] * n for column in DOMAIN_COLUMNS})
        table["in_domain"] = None
        return table[TRUST_COLUMNS]
    table[DOMAIN_COLUMNS] = nearest(trust.reference, features).reset_index(drop=True)
    table["in_domain"] = within_domain(unseen, table["nearest_distance"].to_numpy(), trust.domain_threshold)
    return table[TRUST_COLUMNS]


def trust_warnings(trust: Trust) -> list[str]:
    """One line for each thing that limits how far the ensemble's predictions can be trusted (none: calibrated,
    with a domain threshold)."""
    if trust.reference is None:
        return [f"{trust.domain_note}: in_domain is unknown and kappa_low/high_wmk are the raw ensemble spread"]
    lines = []
    if not trust.calibrated:
        lines.append(f"kappa_low/high_wmk are the raw ensemble spread, not calibrated ({trust.calibration_note})")
    if trust.domain_threshold is None:
        lines.append(f"in_domain checks unseen elements only, no distance threshold ({trust.domain_note})")
    return lines
