"""Training/test set names and the dataset keys (graph files) behind them (no heavy imports: the
workflow's rules read this module)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Dataset keys (graph files) behind each training/test set name.
SET_SOURCES: dict[str, tuple[str, ...]] = {
    "Dataset1": ("dataset1",),
    "Dataset2": ("dataset2",),
    "MIX": ("dataset1", "dataset2"),
    "AFLOW": ("aflow",),
}
DATASET_KEYS: tuple[str, ...] = ("aflow", "dataset1", "dataset2")


def sources_of(names: Iterable[str]) -> list[str]:
    """Dataset keys (graph files) needed by the given set names, in a fixed order."""
    names = list(names)
    unknown = sorted(set(names) - set(SET_SOURCES))
    if unknown:
        raise ValueError(f"unknown set name(s) {unknown}; expected one of {sorted(SET_SOURCES)}")
    keys = {key for name in names for key in SET_SOURCES[name]}
    return [key for key in DATASET_KEYS if key in keys]


def graph_paths(named_inputs: Any) -> dict[str, str]:
    """``{dataset key: graph file}`` of a rule's named inputs (a Snakemake Namedlist, whose ``in``
    tests values, hence ``keys()``)."""
    names = set(named_inputs.keys())
    return {key: str(named_inputs[key]) for key in DATASET_KEYS if key in names}
