"""Which AFLOW AGL entries are the same material as a high-quality (Dataset1/Dataset2) entry.

Candidates are paired only within the same reduced formula, then compared with pymatgen's
``StructureMatcher`` (default tolerances: primitive cells, volume scaling, ltol 0.2, stol 0.3,
angle_tol 5°), so the matching costs a handful of structure comparisons per formula.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pymatgen.analysis.structure_matcher import StructureMatcher

from kappaflow.graphs import record_to_structure

log = logging.getLogger(__name__)

MATCH_COLUMNS = ["aflow_entry", "hq_dataset", "mp_id", "formula", "kappa_agl_wmk", "kappa_hq_wmk"]


def _load(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a validated structure table with their pymatgen structure under ``"structure"``."""
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["structure"] = record_to_structure(row)
    return rows


def match_tables(
    aflow: Sequence[dict[str, Any]],
    hq: Sequence[dict[str, Any]],
    matcher: StructureMatcher | None = None,
) -> pd.DataFrame:
    """Pairs (AFLOW row, HQ row) of the same reduced formula whose structures match.

    Args:
        aflow: validated AFLOW rows, each with a ``"structure"``.
        hq: validated Dataset1/Dataset2 rows, each with a ``"structure"``.
        matcher: the structure matcher; pymatgen's defaults when omitted.

    Returns:
        One row per match (``MATCH_COLUMNS``), sorted by formula, AFLOW entry and HQ dataset.
    """
    matcher = matcher or StructureMatcher()
    by_formula: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in hq:
        by_formula[str(row["formula"])].append(row)
    pairs = [(entry, candidate) for entry in aflow for candidate in by_formula.get(str(entry["formula"]), [])]
    log.info("%d AFLOW × %d HQ rows: %d pairs share a reduced formula", len(aflow), len(hq), len(pairs))
    matches = [
        {
            "aflow_entry": entry["id"],
            "hq_dataset": candidate["dataset"],
            "mp_id": candidate["id"],
            "formula": entry["formula"],
            "kappa_agl_wmk": entry["target"],
            "kappa_hq_wmk": candidate["target"],
        }
        for entry, candidate in pairs
        if matcher.fit(entry["structure"], candidate["structure"])
    ]
    table = pd.DataFrame(matches, columns=MATCH_COLUMNS)
    return table.sort_values(["formula", "aflow_entry", "hq_dataset"], ignore_index=True)


def match_files(aflow: str | Path, hq: Sequence[str | Path], output: str | Path) -> pd.DataFrame:
    """Match ``results/data/aflow.parquet`` against the HQ tables; write the matches CSV."""
    hq_rows = [row for path in hq for row in _load(path)]
    table = match_tables(_load(aflow), hq_rows)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    log.info("%d AFLOW↔HQ matches (%d distinct AFLOW entries)", len(table), table["aflow_entry"].nunique())
    return table
