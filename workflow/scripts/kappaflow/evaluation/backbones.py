"""Backbones compared: fine-tuned MEGNet against the other backbones fine-tuned like steps II and III
(:mod:`kappaflow.training.finetune`) and against frozen representations of every backbone with gradient-boosted
trees, under the paper's protocol and the held-out protocol.

One row per (backbone, way, training set): MAPE on the training set's own test set over seeds, the pooled
held-out MAPE, fit time per run, representation throughput, and two paired comparisons with the reference,
fine-tuned MEGNet (step II) on the same training set: the paper protocol's runs paired by seed, and the held-out
protocol's out-of-fold predictions paired by material (absolute percentage errors: their mean difference is the
difference in held-out MAPE, tested by sign flips). Ways whose held-out fold
ensembles carry a spread (``log_std``: the fine-tuned ones) also get the coverage of their calibrated ±1σ and ±2σ
intervals, cross-fitted over folds as :mod:`kappaflow.calibration` does for MEGNet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import permutation_test, wilcoxon

from kappaflow.calibration import cross_fitted
from kappaflow.evaluation.metrics import metric_frame
from kappaflow.evaluation.results_doc import ALPHA
from kappaflow.evaluation.tables import DDOF, SET_ORDER, _cell, _markdown, _num
from kappaflow.protocol import OK

#: The backbone every row is compared with, fine-tuned, and its throughput's reference.
REFERENCE_BACKBONE = "megnet-2018-eform"
#: Way of each fine-tuned step (rows of ``per_run_metrics.csv`` and ``heldout_predictions.parquet``).
FINE_TUNED_WAYS = {"II": "fine-tuned (step II)", "III": "fine-tuned (step III)"}
REFERENCE_WAY = FINE_TUNED_WAYS["II"]
FROZEN_WAY = "frozen + GBT"
WAY_ORDER = (*FINE_TUNED_WAYS.values(), FROZEN_WAY)
KEYS = ["backbone", "way", "train_on"]
#: One row per paper-protocol run on its own test set.
RUN_COLUMNS = [*KEYS, "run", "mape", "fit_s"]
#: MAPE differences this small are ties (0): rounding, not a difference between two ways.
TIE = 1.0e-9
VS_REFERENCE = ["vs_reference_median_diff", "vs_reference_n_improved", "vs_reference_p"]
#: The held-out comparison: per material, the row's absolute percentage error minus the reference's; their mean
#: (the MAPE difference on the paired materials), how many improved, how many pairs, the sign-flip test's p.
HELDOUT_VS_REFERENCE = ["heldout_vs_reference_mean_diff", "heldout_vs_reference_n_improved",
                        "heldout_vs_reference_n", "heldout_vs_reference_p"]
#: Sign-flip resamples of the held-out test (exact when 2^pairs is fewer) and their seed, for reproducible p.
PERMUTATIONS, PERMUTATION_SEED = 9999, 0
#: The comparison columns of the reference itself.
NO_COMPARISON = dict.fromkeys(VS_REFERENCE, math.nan)
NO_HELDOUT_COMPARISON = dict.fromkeys(HELDOUT_VS_REFERENCE, math.nan)
#: Cross-fitted coverage of the calibrated ±1σ and ±2σ intervals of the held-out fold ensembles.
COVERAGE = ["heldout_coverage_1sigma", "heldout_coverage_2sigma"]
COLUMNS = [*KEYS, "paper_mape_mean", "paper_mape_std", "paper_runs", "heldout_mape", *COVERAGE, "fit_s_median",
           "structures_per_s", "throughput_ratio", *VS_REFERENCE, "verdict", *HELDOUT_VS_REFERENCE,
           "heldout_verdict"]
#: Columns of the held-out rows the table reads (``log_std`` NaN where a way has no ensemble spread).
HELDOUT_COLUMNS = [*KEYS, "fold", "id", "kappa_true", "kappa_pred", "log_std", "status"]


def fine_tuned_runs(per_run: pd.DataFrame) -> pd.DataFrame:
    """:data:`RUN_COLUMNS` of the fine-tuned steps (``per_run_metrics.csv``); no fit time."""
    own = per_run[per_run["step"].isin(list(FINE_TUNED_WAYS)) & (per_run["train_on"] == per_run["test_on"])
                  & (per_run["status"] == OK)]
    named = own.assign(backbone=REFERENCE_BACKBONE, way=own["step"].map(FINE_TUNED_WAYS), fit_s=np.nan)
    return named[RUN_COLUMNS]


def own_runs(paper: pd.DataFrame, way: str = FROZEN_WAY) -> pd.DataFrame:
    """:data:`RUN_COLUMNS` of predictions under the paper's protocol (``backbone``, ``run`` and ``fit_s`` per
    row: the frozen regressions' or the fine-tuned backbones'), named ``way``."""
    own = paper[(paper["train_on"] == paper["test_on"]) & (paper["status"] == OK)]
    if own.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    by = ["backbone", "train_on", "run"]
    metrics = metric_frame(own, by=by).merge(own.groupby(by, as_index=False)["fit_s"].first(), on=by)
    return metrics.assign(way=way)[RUN_COLUMNS]


def pooled_heldout(predictions: pd.DataFrame) -> pd.DataFrame:
    """``backbone, way, train_on, heldout_mape`` over every ``ok`` out-of-fold prediction of held-out rows
    that carry ``backbone`` and ``way``."""
    ok = predictions[predictions["status"] == OK]
    return metric_frame(ok, by=KEYS)[[*KEYS, "mape"]].rename(columns={"mape": "heldout_mape"})


def heldout_coverage(predictions: pd.DataFrame) -> pd.DataFrame:
    """``backbone, way, train_on`` and :data:`COVERAGE` of held-out rows: each fold's rows judged with the
    calibration factor fitted on the other folds (:func:`kappaflow.calibration.cross_fitted`); NaN where no row
    could be judged (no spread, or a single fold)."""
    records = []
    for key, group in predictions.groupby(KEYS, sort=False):
        cross = cross_fitted(group.assign(step=key[1]).reset_index(drop=True))
        judged = cross[np.isfinite(cross["z"])]
        shares = [float(judged[column].mean()) if len(judged) else math.nan
                  for column in ("within_1sigma", "within_2sigma")]
        records.append(dict(zip([*KEYS, *COVERAGE], [*key, *shares], strict=True)))
    return pd.DataFrame(records, columns=[*KEYS, *COVERAGE])


def heldout_errors(predictions: pd.DataFrame) -> pd.DataFrame:
    """``backbone, way, train_on, id, ape``: each material's absolute percentage error out of fold (``ok`` rows;
    a material predicted more than once, the mean)."""
    ok = predictions[predictions["status"] == OK]
    ape = (ok["kappa_pred"] - ok["kappa_true"]).abs() / ok["kappa_true"]
    return ok.assign(ape=ape).groupby([*KEYS, "id"], as_index=False)["ape"].mean()


def megnet_heldout_rows(heldout: pd.DataFrame | None) -> pd.DataFrame:
    """The fine-tuned steps' rows of ``heldout_predictions.parquet`` with ``backbone`` and ``way``."""
    if heldout is None:
        return pd.DataFrame(columns=[*KEYS, "kappa_true", "kappa_pred", "status"])
    rows = heldout[heldout["step"].isin(list(FINE_TUNED_WAYS))]
    return rows.assign(backbone=REFERENCE_BACKBONE, way=rows["step"].map(FINE_TUNED_WAYS))


def structures_per_s(throughput: pd.DataFrame) -> pd.Series:
    """Representation throughput per backbone (structures over seconds, summed over its rows)."""
    total = throughput.groupby("backbone")[["structures", "seconds"]].sum()
    return total["structures"] / total["seconds"]


def paired_differences(rows: pd.DataFrame, reference: pd.DataFrame, on: str, value: str) -> np.ndarray:
    """``value`` of ``rows`` minus the reference's, paired on ``on``; differences within :data:`TIE` are 0."""
    pairs = rows[[on, value]].merge(reference[[on, value]], on=on, suffixes=("", "_reference"))
    diff = (pairs[value] - pairs[f"{value}_reference"]).to_numpy(dtype=float)
    return np.where(np.abs(diff) <= TIE, 0.0, diff)


def paired_summary(diff: np.ndarray) -> tuple[float, float, float]:
    """Median difference (negative: better than the reference), pairs improved and the two-sided Wilcoxon
    signed-rank p (NaN for fewer than 2 pairs or all differences 0); NaN everywhere without pairs."""
    if not len(diff):
        return math.nan, math.nan, math.nan
    testable = len(diff) >= 2 and bool(np.any(diff != 0))
    return float(np.median(diff)), float((diff < 0).sum()), float(wilcoxon(diff).pvalue) if testable else math.nan


def paired_with_reference(runs: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """:data:`VS_REFERENCE`: the paper protocol's MAPE (row − reference), runs paired by seed."""
    return dict(zip(VS_REFERENCE, paired_summary(paired_differences(runs, reference, "run", "mape")), strict=True))


def sign_flip_p(diff: np.ndarray) -> float:
    """Two-sided p of a paired sign-flip permutation test of the mean difference (NaN for fewer than 2 pairs or
    all differences 0): unlike a rank test it asks what MAPE asks, whether the mean error differs."""
    if len(diff) < 2 or not np.any(diff != 0):
        return math.nan
    result = permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=PERMUTATIONS,
                              alternative="two-sided", rng=np.random.default_rng(PERMUTATION_SEED))
    return float(result.pvalue)


def heldout_paired_with_reference(errors: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """:data:`HELDOUT_VS_REFERENCE`: out-of-fold absolute percentage errors (:func:`heldout_errors`, row −
    reference), paired by material."""
    diff = paired_differences(errors, reference, "id", "ape")
    if not len(diff):
        return dict(NO_HELDOUT_COMPARISON)
    values = (float(diff.mean()), float((diff < 0).sum()), float(len(diff)), sign_flip_p(diff))
    return dict(zip(HELDOUT_VS_REFERENCE, values, strict=True))


def verdict(is_reference: bool, diff: float, p: float, unpaired: str = "no paired runs") -> str:
    """``reference``; ``unpaired`` without a difference (nothing of the row pairs with the reference: no usable
    run, no reference on that set); ``better`` or ``worse`` (by the sign of the tested difference, row −
    reference) when p < :data:`ALPHA`; else no difference beyond noise."""
    if is_reference:
        return "reference"
    if math.isnan(diff):
        return unpaired
    if p < ALPHA and diff != 0:
        return "better" if diff < 0 else "worse"
    return "no difference beyond noise"


def _concat(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """``frames`` concatenated (an empty frame with ``columns`` when there are none)."""
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def _row(key: tuple[str, str, str], runs: pd.DataFrame, reference: pd.DataFrame, pooled: pd.DataFrame,
         rates: pd.Series, errors: pd.DataFrame, reference_errors: pd.DataFrame) -> dict[str, object]:
    """One row of :func:`comparison_table`: ``runs`` are the key's paper runs, ``reference`` the reference's,
    ``pooled`` the held-out MAPEs and coverages by key, ``rates`` the throughputs by backbone, ``errors`` and
    ``reference_errors`` the key's and the reference's out-of-fold errors (:func:`heldout_errors`)."""
    backbone, way, _ = key
    mapes = runs["mape"].to_numpy(dtype=float)
    is_reference = (backbone, way) == (REFERENCE_BACKBONE, REFERENCE_WAY)
    paired = NO_COMPARISON if is_reference else paired_with_reference(runs, reference)
    heldout = NO_HELDOUT_COMPARISON if is_reference else heldout_paired_with_reference(errors, reference_errors)
    rate = rates.get(backbone, math.nan) if way == FROZEN_WAY else math.nan
    return {
        **dict(zip(KEYS, key, strict=True)),
        "paper_mape_mean": float(mapes.mean()) if mapes.size else math.nan,
        "paper_mape_std": float(np.std(mapes, ddof=DDOF)) if mapes.size > DDOF else math.nan,
        "paper_runs": int(mapes.size),
        **{column: pooled[column].get(key, math.nan) for column in ["heldout_mape", *COVERAGE]},
        "fit_s_median": float(runs["fit_s"].median()) if len(runs) else math.nan,
        "structures_per_s": rate,
        "throughput_ratio": rate / rates.get(REFERENCE_BACKBONE, math.nan),
        **paired,
        "verdict": verdict(is_reference, paired["vs_reference_median_diff"], paired["vs_reference_p"]),
        **heldout,
        "heldout_verdict": verdict(is_reference, heldout["heldout_vs_reference_mean_diff"],
                                   heldout["heldout_vs_reference_p"], "no paired materials"),
    }


def comparison_table(
    fine_tuned_per_run: pd.DataFrame,
    megnet_heldout: pd.DataFrame | None,
    frozen_paper: Sequence[pd.DataFrame],
    frozen_heldout: Sequence[pd.DataFrame],
    throughput: pd.DataFrame,
    fine_tuned: pd.DataFrame | None = None,
    fine_tuned_heldout: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (backbone, way, training set), :data:`COLUMNS`, ordered by training set and way.

    ``fine_tuned_per_run``: ``per_run_metrics.csv``; ``megnet_heldout``: ``heldout_predictions.parquet``
    (None when the held-out protocol was not run); ``frozen_*``: :mod:`kappaflow.frozen` predictions, one
    frame per backbone; ``throughput``: ``backbone, structures, seconds`` of the representations; ``fine_tuned``:
    the predictions of the other backbones fine-tuned like steps II and III (:mod:`kappaflow.training.finetune`,
    way by their ``step``), and ``fine_tuned_heldout`` their fold ensembles' held-out predictions.
    """
    others = [] if fine_tuned is None else [own_runs(frame, FINE_TUNED_WAYS[step])
                                            for step, frame in fine_tuned.groupby("step", sort=False)]
    runs = _concat([fine_tuned_runs(fine_tuned_per_run), *others, *map(own_runs, frozen_paper)], RUN_COLUMNS)
    heldout_rows = [megnet_heldout_rows(megnet_heldout),
                    *(frame.assign(way=FROZEN_WAY) for frame in frozen_heldout)]
    if fine_tuned_heldout is not None:
        heldout_rows.append(fine_tuned_heldout.assign(way=fine_tuned_heldout["step"].map(FINE_TUNED_WAYS)))
    heldout = _concat(heldout_rows, HELDOUT_COLUMNS).reindex(columns=HELDOUT_COLUMNS)
    pooled = pooled_heldout(heldout).merge(heldout_coverage(heldout), on=KEYS, how="left").set_index(KEYS)
    errors = {key: group for key, group in heldout_errors(heldout).groupby(KEYS, sort=False)}
    groups = {key: group for key, group in runs.groupby(KEYS, sort=False)}
    keys = list(dict.fromkeys([*groups, *pooled.index]))
    empty, no_errors = pd.DataFrame(columns=RUN_COLUMNS), pd.DataFrame(columns=[*KEYS, "id", "ape"])
    rates = structures_per_s(throughput)
    rows = []
    for key in keys:
        reference_key = (REFERENCE_BACKBONE, REFERENCE_WAY, key[2])
        rows.append(_row(key, groups.get(key, empty), groups.get(reference_key, empty), pooled, rates,
                         errors.get(key, no_errors), errors.get(reference_key, no_errors)))
    table = pd.DataFrame(rows, columns=COLUMNS)
    rank = {"train_on": {name: i for i, name in enumerate(SET_ORDER)},
            "way": {way: i for i, way in enumerate(WAY_ORDER)}}
    return table.sort_values(["train_on", "way"], key=lambda column: column.map(rank[column.name]),
                             kind="stable").reset_index(drop=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    """:func:`comparison_table` as markdown, headed ``## Backbones compared``, with how to read it."""
    rows = []
    for row in table.itertuples(index=False):
        improved = "—" if math.isnan(row.vs_reference_n_improved) else f"{int(row.vs_reference_n_improved)}"
        diff = f"{row.vs_reference_median_diff:+.3f}" if np.isfinite(row.vs_reference_median_diff) else "—"
        p = f"{row.vs_reference_p:.2g}" if np.isfinite(row.vs_reference_p) else "—"
        rows.append([
            row.train_on, row.backbone, row.way, _cell(row.paper_mape_mean, row.paper_mape_std),
            str(row.paper_runs), _num(row.heldout_mape, 2), _coverage_cell(row), _num(row.fit_s_median, 1),
            _num(row.structures_per_s, 1), _num(row.throughput_ratio, 2), diff, improved, p, row.verdict,
            _heldout_cell(row), row.heldout_verdict,
        ])
    header = ["train on", "backbone", "way", "MAPE, mean (std)", "runs", "held-out MAPE", "±1σ / ±2σ coverage",
              "fit s (median)", "structures/s", "× MEGNet", "Δ median vs reference", "improved", "p", "verdict",
              "held-out Δ MAPE (improved/materials, p)", "held-out verdict"]
    body = _markdown(header, rows)
    note = (
        "Ways: fine-tuned, the network trained end to end (step II from the pretrained backbone, step III "
        "after the AFLOW stage; a backbone other than MEGNet with a fresh head on its representation); "
        "frozen + GBT, each backbone's representation computed once and "
        "gradient-boosted trees fitted on it (log10 κ). Protocols: the paper's (per seed, fit on the "
        "network's training split of each training set, MAPE on its own validation split, mean (std, "
        f"ddof={DDOF}) over seeds) and the held-out one (K outer folds, MAPE pooled over every material's "
        "out-of-fold prediction). Each row is compared with the reference, fine-tuned MEGNet (step II) on "
        "the same training set, runs paired by seed: median MAPE difference (negative: better), seeds "
        f"improved and the two-sided Wilcoxon signed-rank p; better or worse only when p < {ALPHA}, and no "
        "winner is claimed within noise; no paired runs (materials): the row has no usable run (out-of-fold "
        "prediction) that pairs with one of the reference. Under the held-out protocol the pairs are "
        "materials: each material's absolute percentage error out of fold minus the reference's, their mean (the difference in MAPE) tested "
        "by a paired sign-flip permutation test, with the same rule. Coverage: "
        "the share of held-out materials within the fold ensemble's calibrated ±1σ and ±2σ intervals (log10 κ; "
        "the factor fitted on the other folds; a calibrated ensemble covers about 0.68 and 0.95), for ways "
        "with an ensemble spread. Fit s: the median seconds per run of the paper protocol, to fit the trees "
        "(frozen) or to train the network (a fine-tuned backbone; the reference's training time is in the wall "
        "time per rule, rule train). MAPE as a fraction; throughput: structures represented per second, and its "
        "ratio to MEGNet's."
    )
    return f"## Backbones compared\n\n{body}\n\n{note}\n"


def _coverage_cell(row: Any) -> str:
    """``0.67 / 0.93``: a row's held-out coverage; ``—`` without one."""
    if not np.isfinite(row.heldout_coverage_1sigma):
        return "—"
    return f"{row.heldout_coverage_1sigma:.2f} / {row.heldout_coverage_2sigma:.2f}"


def _heldout_cell(row: Any) -> str:
    """``+0.012 (40/95, p 0.3)`` for a row's held-out comparison; ``—`` without one."""
    if not np.isfinite(row.heldout_vs_reference_mean_diff):
        return "—"
    p = f"{row.heldout_vs_reference_p:.2g}" if np.isfinite(row.heldout_vs_reference_p) else "—"
    return (f"{row.heldout_vs_reference_mean_diff:+.3f} ({int(row.heldout_vs_reference_n_improved)}/"
            f"{int(row.heldout_vs_reference_n)}, p {p})")


def read_throughput(backbones: Sequence[str], representations: Sequence[str | Path],
                    benchmarks: Sequence[str | Path]) -> pd.DataFrame:
    """``backbone, structures, seconds`` of each backbone's representation job: the structures in its tables
    (``results/representations/<backbone>/``) and the wall time of its benchmark (``logs/benchmarks/represent/``)."""
    rows = []
    for backbone, benchmark in zip(backbones, benchmarks, strict=True):
        tables = [path for path in representations if Path(path).parent.name == backbone]
        structures = sum(pq.ParquetFile(path).metadata.num_rows for path in tables)
        rows.append({"backbone": backbone, "structures": structures,
                     "seconds": float(pd.read_csv(benchmark, sep="\t")["s"].iloc[-1])})
    return pd.DataFrame(rows, columns=["backbone", "structures", "seconds"])


def _read_all(paths: Sequence[str | Path]) -> pd.DataFrame | None:
    """The parquet files concatenated (None when there are none)."""
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True) if paths else None


def write_comparison(
    per_run_csv: str | Path, heldout: str | Path | None, paper: Sequence[str | Path],
    frozen_heldout: Sequence[str | Path], throughput: pd.DataFrame, table_csv: str | Path, table_md: str | Path,
    fine_tuned: Sequence[str | Path] = (), fine_tuned_heldout: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Read the result files, :func:`comparison_table`, write ``backbone_comparison.{csv,md}``.

    ``fine_tuned``: the ``predictions.parquet`` of every paper-protocol run of ``results/finetuned/``;
    ``fine_tuned_heldout``: its ``<backbone>/step<step>/<set>/heldout_predictions.parquet`` fold ensembles.
    """
    table = comparison_table(
        pd.read_csv(per_run_csv), pd.read_parquet(heldout) if heldout else None,
        [pd.read_parquet(path) for path in paper], [pd.read_parquet(path) for path in frozen_heldout], throughput,
        _read_all(fine_tuned), _read_all(fine_tuned_heldout),
    )
    for path in (table_csv, table_md):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(table_csv, index=False, float_format="%.4f")
    Path(table_md).write_text(comparison_markdown(table))
    return table
