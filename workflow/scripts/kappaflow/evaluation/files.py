"""File-level entry points of the evaluation rules (one call per Snakemake script)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from kappaflow.evaluation.runs import collect_runs
from kappaflow.protocol import unphysical
from kappaflow.trust import read_threshold, within_domain
from kappaflow.evaluation.tables import (
    heldout_markdown,
    heldout_per_run,
    heldout_table,
    mape_markdown,
    mape_table,
    per_run_mape,
    vs_published,
    vs_published_markdown,
)

log = logging.getLogger(__name__)


def _mkdirs(*paths: str | Path) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def read_history(run_jsons: Iterable[str | Path]) -> pd.DataFrame:
    """Per-epoch losses of every run (``metrics.csv`` beside each ``run.json``) with step, train_on, run."""
    frames = []
    for path in map(Path, run_jsons):
        meta = json.loads(path.read_text())
        metrics = pd.read_csv(path.parent / "metrics.csv")
        frames.append(metrics.assign(step=meta["step"], train_on=meta["train_on"], run=int(meta["seed"])))
    columns = ["step", "train_on", "run", "epoch", "train_loss", "val_loss"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def collect(
    run_jsons: Sequence[str | Path],
    baseline: Sequence[str | Path],
    trust: Sequence[str | Path],
    predictions_out: str | Path,
    runs_out: str | Path,
    history_out: str | Path,
) -> None:
    """Concatenate every run's predictions (and the baseline's) with ``status``, ``unphysical`` and ``in_domain``
    columns; runs and history.

    ``trust``: the ``trust.json`` of every ensemble, whose held-out distance threshold decides ``in_domain``
    (with the run's unseen elements and its distance to its own training split); the baseline has no domain.
    """
    runs, predictions = collect_runs(run_jsons)
    thresholds = {tuple(Path(path).parent.parts[-2:]): read_threshold(path) for path in trust}
    predictions["in_domain"] = False
    for (step, train_on), rows in predictions.groupby(["step", "train_on"]).groups.items():
        part = predictions.loc[rows]
        predictions.loc[rows, "in_domain"] = within_domain(
            part["unseen_elements"].tolist(), part["nearest_distance"].to_numpy(), thresholds[f"step{step}", train_on])
    frames = [predictions, *(pd.read_parquet(path) for path in baseline)]
    predictions = pd.concat([f for f in frames if len(f)], ignore_index=True)
    predictions["unphysical"] = unphysical(predictions["kappa_pred"])
    failed = runs[runs["status"] != "ok"]
    log.info("%d runs, %d failed", len(runs), len(failed))
    for row in failed.itertuples(index=False):
        log.warning("failed run: step %s, %s, run %s: %s", row.step, row.train_on, row.run, row.status)
    _mkdirs(predictions_out, runs_out, history_out)
    predictions.to_parquet(predictions_out, index=False)
    runs.to_csv(runs_out, index=False)
    read_history(run_jsons).to_csv(history_out, index=False)


def write_mape_tables(
    predictions: str | Path,
    published: str | Path,
    per_run_out: str | Path,
    table_csv: str | Path,
    table_md: str | Path,
    comparison_csv: str | Path,
    comparison_md: str | Path,
) -> None:
    """``mape_table.{csv,md}``, ``vs_published.{csv,md}`` and the per-run metrics from all predictions."""
    per_run = per_run_mape(pd.read_parquet(predictions))
    table = mape_table(per_run)
    comparison = vs_published(table, pd.read_csv(published))
    _mkdirs(per_run_out, table_csv, table_md, comparison_csv, comparison_md)
    per_run.to_csv(per_run_out, index=False)
    table.to_csv(table_csv, index=False, float_format="%.4f")
    Path(table_md).write_text(mape_markdown(table))
    comparison.to_csv(comparison_csv, index=False, float_format="%.4f")
    Path(comparison_md).write_text(vs_published_markdown(comparison))


def overlap_note(test_ids: Sequence[str], matches: pd.DataFrame, id_column: str) -> str:
    """How many held-out materials have an AFLOW twin (matching table) that stage 1 may have trained on."""
    test_ids = set(map(str, test_ids))
    twins = test_ids & set(matches[id_column].astype(str)) if id_column in matches.columns else set()
    return (
        f"Step III reuses the stage-1 AFLOW checkpoint. {len(twins)} of the {len(test_ids)} held-out "
        "materials have an AFLOW entry of the same structure (results/matching/aflow_hq_matches.csv) that "
        "stage 1 may have trained on, with its AGL κ, not the ab-initio κ scored here."
    )


def write_heldout_tables(
    ensembles: Sequence[str | Path],
    runs: Sequence[str | Path],
    baseline: Sequence[str | Path],
    matches: str | Path | None,
    predictions_out: str | Path,
    per_run_out: str | Path,
    table_csv: str | Path,
    table_md: str | Path,
) -> None:
    """``heldout_table.{csv,md}`` from the fold ensembles and their member runs (and the baseline's folds,
    one forest each: its own ensemble and run), the pooled predictions and the per-run metrics."""
    ensemble_rows = [pd.read_parquet(path) for path in ensembles]
    run_rows = [pd.read_parquet(path) for path in runs]
    for path in baseline:
        forests = pd.read_parquet(path)
        ensemble_rows.append(forests)
        run_rows.append(forests)
    predictions = pd.concat(ensemble_rows, ignore_index=True)
    predictions["unphysical"] = unphysical(predictions["kappa_pred"])
    per_run = heldout_per_run(pd.concat(run_rows, ignore_index=True))
    table = heldout_table(predictions, per_run)
    notes = []
    if matches is not None and "III" in set(predictions["step"]):
        tested = predictions.loc[predictions["step"] == "III", "id"].unique()
        notes.append(overlap_note(tested, pd.read_csv(matches), id_column="mp_id"))
    _mkdirs(predictions_out, per_run_out, table_csv, table_md)
    predictions.to_parquet(predictions_out, index=False)
    per_run.to_csv(per_run_out, index=False, float_format="%.4f")
    table.to_csv(table_csv, index=False, float_format="%.4f")
    Path(table_md).write_text(heldout_markdown(table, notes))
