"""Calibration of the ensemble spread and the applicability domain, from held-out ensemble rows.

Input: one row per outer-test material per ``(step, train_on, fold)`` with ``kappa_true``,
``kappa_pred`` (ensemble mean, W/mK), ``log_std`` (std over the members of log10 κ, ddof=1) and
``nearest_distance`` (distance to the closest training material in the network's representation).
The residual is ``log10 κ_pred − log10 κ_true``; a row is usable when it and ``log_std > 0`` are finite.

The calibration factor ``s`` scales the ensemble std so that a fraction ``level`` of residuals lie
within ``±s·σ``. Coverage is always cross-fitted: the rows of fold ``f`` are judged with ``s`` fitted
on the other folds of the same ``(step, train_on)``, never on fold ``f`` itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from kappaflow.evaluation.tables import STEP_LABELS, _markdown, _num, _order

log = logging.getLogger(__name__)

#: Share of a normal distribution within ±1σ and ±2σ (2Φ(k) − 1).
ONE_SIGMA = 0.6826894921370859
TWO_SIGMA = 0.9544997361036416
GROUP = ["step", "train_on"]
COVERAGE_COLUMNS = [
    "step", "train_on", "folds", "n_materials", "n_usable", "scale", "raw_coverage_1sigma",
    "raw_coverage_2sigma", "coverage_1sigma", "coverage_2sigma", "median_abs_log_error",
]
TRUST_KEYS = [
    "scale", "coverage_1sigma", "coverage_2sigma", "raw_coverage_1sigma", "raw_coverage_2sigma",
    "n_usable", "folds",
]


def log_error(kappa_pred: np.ndarray | pd.Series, kappa_true: np.ndarray | pd.Series) -> np.ndarray:
    """``log10(pred) − log10(true)``; NaN where either is ≤ 0 or NaN."""
    pred, true = np.broadcast_arrays(np.asarray(kappa_pred, dtype=float), np.asarray(kappa_true, dtype=float))
    out = np.full(pred.shape, np.nan)
    ok = (pred > 0) & (true > 0)
    out[ok] = np.log10(pred[ok]) - np.log10(true[ok])
    return out


def _usable(residual: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """Rows with a finite residual and a finite, positive ensemble std."""
    return np.isfinite(residual) & np.isfinite(log_std) & (log_std > 0)


def fit_scale(
    residual: np.ndarray | pd.Series, log_std: np.ndarray | pd.Series, level: float = ONE_SIGMA
) -> float:
    """Factor ``s`` with a share ``level`` of usable rows having ``|residual| ≤ s·log_std``; NaN if none."""
    residual, log_std = np.asarray(residual, dtype=float), np.asarray(log_std, dtype=float)
    ok = _usable(residual, log_std)
    if not ok.any():
        return float("nan")
    return float(np.quantile(np.abs(residual[ok]) / log_std[ok], level))


def cross_fitted(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``rows`` with ``residual, usable, scale, z, within_1sigma, within_2sigma``.

    ``scale`` of a row is :func:`fit_scale` of the usable rows in the other folds of its
    ``(step, train_on)``: NaN when the group has a single fold.
    """
    out = rows.copy()
    residual = log_error(out["kappa_pred"], out["kappa_true"])
    sigma = out["log_std"].to_numpy(dtype=float)
    usable = _usable(residual, sigma)
    folds = out["fold"].to_numpy()
    scale = np.full(len(out), np.nan)
    for positions in out.groupby(GROUP, sort=False).indices.values():
        for fold in np.unique(folds[positions]):
            own = folds[positions] == fold
            other = positions[~own & usable[positions]]
            scale[positions[own]] = fit_scale(residual[other], sigma[other])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(usable, np.abs(residual) / (scale * sigma), np.nan)
    out["residual"] = residual
    out["usable"] = usable
    out["scale"] = scale
    out["z"] = z
    out["within_1sigma"] = z <= 1
    out["within_2sigma"] = z <= 2
    return out


def _groups(cross: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """``(step, train_on, rows)`` per group, in the paper's order of steps and training sets."""
    keys = _order(cross[GROUP].drop_duplicates())
    for step, train_on in keys.itertuples(index=False):
        yield step, train_on, cross[(cross["step"] == step) & (cross["train_on"] == train_on)]


def _share(mask: np.ndarray) -> float:
    """Mean of a boolean array; NaN when empty."""
    return float(np.mean(mask)) if mask.size else float("nan")


def coverage_table(cross: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(step, train_on)``: calibration factor, raw and cross-fitted coverage, median error.

    ``scale`` is fitted on all usable rows of the group (the factor for the full-data ensemble);
    cross-fitted coverage counts the usable rows whose own scale (from the other folds) exists.
    """
    records = []
    for step, train_on, group in _groups(cross):
        part = group[group["usable"]]
        ratio = np.abs(part["residual"].to_numpy(dtype=float)) / part["log_std"].to_numpy(dtype=float)
        judged = part[np.isfinite(part["z"])]
        abs_error = np.abs(part["residual"].to_numpy(dtype=float))
        records.append(
            {
                "step": step,
                "train_on": train_on,
                "folds": int(group["fold"].nunique()),
                "n_materials": len(group),
                "n_usable": len(part),
                "scale": fit_scale(part["residual"], part["log_std"]),
                "raw_coverage_1sigma": _share(ratio <= 1),
                "raw_coverage_2sigma": _share(ratio <= 2),
                "coverage_1sigma": _share(judged["within_1sigma"].to_numpy(dtype=bool)),
                "coverage_2sigma": _share(judged["within_2sigma"].to_numpy(dtype=bool)),
                "median_abs_log_error": float(np.median(abs_error)) if abs_error.size else float("nan"),
            }
        )
    return pd.DataFrame(records, columns=COVERAGE_COLUMNS)


def domain_threshold(
    distance: np.ndarray | pd.Series,
    abs_error: np.ndarray | pd.Series,
    factor: float,
    quantiles: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
    min_rows: int = 5,
) -> tuple[float, str]:
    """The distance beyond which held-out error clearly grows, and a sentence saying which rule fired.

    The smallest quantile cut ``c`` of the distances where the median error of rows beyond ``c`` (at
    least ``min_rows`` of them) is ≥ ``factor`` × the median error of rows within ``c``, and larger;
    otherwise the largest held-out distance. NaN with fewer than ``2·min_rows`` usable rows.
    """
    distance, abs_error = np.asarray(distance, dtype=float), np.asarray(abs_error, dtype=float)
    ok = np.isfinite(distance) & np.isfinite(abs_error)
    distance, abs_error = distance[ok], abs_error[ok]
    if distance.size < 2 * min_rows:
        return float("nan"), (
            f"only {distance.size} held-out rows with distance and error (< {2 * min_rows}): no threshold"
        )
    for cut in np.sort(np.quantile(distance, quantiles)):
        beyond = distance > cut
        if beyond.sum() < min_rows:
            continue
        far, near = np.median(abs_error[beyond]), np.median(abs_error[~beyond])
        if far >= factor * near and far > near:
            return float(cut), (
                f"median |log10 error| {far:.2f} beyond distance {cut:.2f} (n={beyond.sum()}) "
                f"vs {near:.2f} within (n={(~beyond).sum()}): ≥ {factor:g}×"
            )
    largest = float(distance.max())
    return largest, (
        f"error does not grow by {factor:g}× within the held-out distances (max {largest:.2f}); "
        "threshold = the largest held-out distance"
    )


def _plain(value: object) -> object:
    """A JSON-ready Python scalar: NaN → None, numpy numbers → int / float."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value) if np.isfinite(value) else None


def trust_records(cross: pd.DataFrame, factor: float) -> dict[str, dict]:
    """Per ``step{step}/{train_on}``: calibration factor, coverage and applicability-domain threshold."""
    table = {(row["step"], row["train_on"]): row for row in coverage_table(cross).to_dict("records")}
    records = {}
    for step, train_on, group in _groups(cross):
        part = group[group["usable"]]
        threshold, note = domain_threshold(part["nearest_distance"], np.abs(part["residual"]), factor=factor)
        record = {key: _plain(table[step, train_on][key]) for key in TRUST_KEYS}
        record.update(domain_threshold=_plain(threshold), domain_note=note)
        records[f"step{step}/{train_on}"] = record
    return records


def coverage_markdown(table: pd.DataFrame) -> str:
    """The coverage table as markdown, with a sentence on how coverage and calibration are defined."""
    rows = []
    for row in table.itertuples(index=False):
        usable = f" ({row.n_usable} usable)" if row.n_usable < row.n_materials else ""
        rows.append([
            STEP_LABELS.get(row.step, row.step), row.train_on, str(row.folds), f"{row.n_materials}{usable}",
            _num(row.scale, 2),
            _num(row.raw_coverage_1sigma, 2), _num(row.coverage_1sigma, 2),
            _num(row.raw_coverage_2sigma, 2), _num(row.coverage_2sigma, 2), _num(row.median_abs_log_error, 3),
        ])
    header = [
        "step", "train on", "folds", "materials", "factor s", "±1σ raw", "±1σ calibrated", "±2σ raw",
        "±2σ calibrated", r"median \|log10 error\|",  # escaped: a bare | would split the cell
    ]
    note = (
        "Coverage = share of held-out materials whose log10 κ lies within ±kσ of the ensemble's log10 mean "
        "(σ = std of log10 κ over the ensemble members); calibrated: σ × s with s fitted on the other folds "
        f"(cross-fitted), s in the table fitted on all folds; target for ±1σ {ONE_SIGMA:.2f}, "
        f"for ±2σ {TWO_SIGMA:.2f}."
    )
    title = "## Calibration of the ensemble spread (held-out folds)"
    return "\n\n".join([title, _markdown(header, rows), note])


def calibration_figure(cross: pd.DataFrame, path: str | Path, factor: float) -> list[Path]:
    """Observed vs nominal coverage (raw dashed, calibrated solid) and |log10 error| vs distance per group, with
    the domain threshold of :func:`domain_threshold` (``factor``)."""
    from kappaflow.figures import plt, save

    k = np.linspace(0, 3, 61)
    nominal = 2 * norm.cdf(k) - 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    left.plot([0, 1], [0, 1], color="0.6", lw=0.8)
    for i, (step, train_on, group) in enumerate(_groups(cross)):
        color, label = colors[i % len(colors)], f"step {step}, {train_on}"
        part = group[group["usable"]]
        abs_error = np.abs(part["residual"].to_numpy(dtype=float))
        raw = abs_error / part["log_std"].to_numpy(dtype=float)
        z = part["z"].to_numpy(dtype=float)
        z = z[np.isfinite(z)]
        if raw.size:
            left.plot(nominal, (raw[:, None] <= k).mean(axis=0), color=color, ls="--", lw=1)
        if z.size:
            left.plot(nominal, (z[:, None] <= k).mean(axis=0), color=color, lw=1.5, label=label)
        right.scatter(part["nearest_distance"], abs_error, s=6, alpha=0.4, color=color, label=label)
        threshold, _ = domain_threshold(part["nearest_distance"], abs_error, factor=factor)
        if np.isfinite(threshold):
            right.axvline(threshold, color=color, ls=":", lw=1.2)
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal coverage 2Φ(k) − 1", ylabel="observed coverage",
             title="Held-out coverage of ±kσ (dashed: raw σ, solid: σ × s)")
    right.set(xlabel="distance to the nearest training material", ylabel="|log10 κ_pred − log10 κ_true|",
              title="Held-out error vs distance (dotted: domain threshold)")
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, path)


def write_calibration(
    ensembles: Sequence[str | Path], trust_out: str | Path, table_csv: str | Path, table_md: str | Path,
    png: str | Path, factor: float,
) -> dict[str, dict]:
    """Read the held-out folds' ``ensemble.parquet`` files, write every output, return the records."""
    cross = cross_fitted(pd.concat([pd.read_parquet(path) for path in ensembles], ignore_index=True))
    table = coverage_table(cross)
    records = trust_records(cross, factor=factor)
    for path in (trust_out, table_csv, table_md):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(table_csv, index=False)
    Path(table_md).write_text(coverage_markdown(table) + "\n")
    Path(trust_out).write_text(json.dumps(records, indent=2, allow_nan=False) + "\n")
    calibration_figure(cross, png, factor)
    log.info("calibration: %d held-out rows, %d groups", len(cross), len(records))
    return records
