"""Evaluation: per-material metrics and the result tables.

- ``metrics``: MAPE on κ, MAE of log10 κ, Spearman ρ.
- ``runs``: read trained runs (``run.json`` + ``predictions.parquet``) into one frame.
- ``tables``: the paper's MAPE table, the comparison with the published numbers, the held-out table.
"""

from __future__ import annotations

from kappaflow.evaluation.metrics import mae_log10, mape, metric_frame, spearman
from kappaflow.evaluation.runs import collect_runs
from kappaflow.evaluation.tables import (
    heldout_markdown,
    heldout_table,
    mape_markdown,
    mape_table,
    per_run_mape,
    vs_published,
    vs_published_markdown,
)

__all__ = [
    "collect_runs",
    "heldout_markdown",
    "heldout_table",
    "mae_log10",
    "mape",
    "mape_markdown",
    "mape_table",
    "metric_frame",
    "per_run_mape",
    "spearman",
    "vs_published",
    "vs_published_markdown",
]
