"""Tiny graph tables built from mirror structures, and tiny run specs, for the training tests."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
from kappaflow.graphs import featurize_record, structure_to_record, write_graph_table
from _schema import run_options
from _tiny_ensemble import TINY_INIT_ARGS
from kappaflow.training.runner import RunSpec
from pymatgen.core import Structure

N_PER_DATASET = {"dataset1": 16, "dataset2": 16, "aflow": 20}


def _records(mirror: Path, key: str, n: int) -> list[dict[str, object]]:
    if key == "aflow":
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        labels = pd.read_csv(mirror / "aflow_agl" / "labels.csv").head(n)
        rows = [
            (entry, Structure.from_file(mirror / "aflow_agl" / "cif" / f"{entry}.cif"), kappa)
            for entry, kappa in zip(labels.entry, labels.agl_thermal_conductivity_300K)
        ]
    else:
        labels = pd.read_csv(mirror / "hq" / f"{key}.csv")
        rows = []
        for mp_id, kappa in zip(labels.mp_id, labels.ltc_wmk):
            path = mirror / "mp" / "structures" / f"{mp_id}.json"
            if path.is_file():
                rows.append((mp_id, Structure.from_dict(json.loads(path.read_text())), kappa))
            if len(rows) == n:
                break
    return [
        featurize_record({"id": ident, "dataset": key, "target": float(kappa), **structure_to_record(s)}, 4.0)
        for ident, s, kappa in rows
    ]


@pytest.fixture(scope="session")
def graph_paths(tmp_path_factory: pytest.TempPathFactory, mirror_dir: Path) -> dict[str, str]:
    """``{dataset key: parquet path}`` for small aflow/dataset1/dataset2 graph tables."""
    folder = tmp_path_factory.mktemp("graphs")
    paths = {}
    for key, n in N_PER_DATASET.items():
        paths[key] = str(folder / f"{key}.parquet")
        write_graph_table(_records(mirror_dir, key, n), paths[key], cutoff=4.0)
    return paths


@pytest.fixture()
def tiny_spec(tmp_path: Path, graph_paths: dict[str, str], pretrained_dir: Path):
    """Factory of tiny run specs writing under ``tmp_path``."""

    def make(**overrides: object) -> RunSpec:
        values: dict[str, object] = {
            **run_options(),
            "step": "I",
            "train_on": "Dataset1",
            "seed": 1,
            "out_dir": str(tmp_path / "models" / "run1"),
            "graph_paths": graph_paths,
            "pretrained_dir": str(pretrained_dir),
            "init": "random",
            "epochs": 3,
            "batch_size": 4,
            "head_hidden": [8, 8],
            "init_args": dict(TINY_INIT_ARGS),
        }
        values.update(overrides)
        return RunSpec(**values)

    return make
