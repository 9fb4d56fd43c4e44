from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from kappaflow import frozen
from kappaflow.baseline import forest, paper_protocol_predictions
from kappaflow.evaluation.metrics import mape
from kappaflow.frozen import HELDOUT_COLUMNS, PAPER_COLUMNS, represent_file, write_frozen_protocols
from kappaflow.graphs import structure_to_record
from kappaflow.heldout import heldout_predictions
from pymatgen.core import Lattice, Structure
from threadpoolctl import threadpool_limits

FORMULAS = ["NaCl", "KCl", "MgO", "GaAs", "InP", "ZnS", "CdTe", "AlN", "GaN", "SiC", "BN", "LiF"]
REGRESSOR = {"max_iter": 20, "learning_rate": 0.2, "min_samples_leaf": 5}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The trees' OpenMP threads, one: many threads on a busy machine make each fit seconds long."""
    with threadpool_limits(1):
        yield


class FakeBackbone:
    """Represents a structure by (sites, volume per site, mean Z); refuses xenon."""

    spec = SimpleNamespace(name="fake", representation_dim=3)

    def supports(self, structure: Structure) -> str | None:
        return "element Xe outside fake's element types" if "Xe" in structure.composition else None

    def represent(self, structures: Sequence[Structure], batch_size: int) -> np.ndarray:
        assert batch_size == 2
        rows = [[len(s), s.volume / len(s), np.mean(s.atomic_numbers)] for s in structures]
        return np.asarray(rows, dtype=float).reshape(-1, 3)


def rock_salt(a: str, b: str, lattice: float) -> Structure:
    return Structure(Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_represent_file_accounts_for_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "BLOCK", 2)  # several blocks, one of them without a supported structure
    structures = [rock_salt("Na", "Cl", 3.0), rock_salt("Xe", "Cl", 3.5), rock_salt("K", "Br", 3.3),
                  rock_salt("Mg", "O", 2.2), rock_salt("Li", "F", 2.0)]
    records = [{"id": f"mp-{i}", "dataset": "dataset1", "target": float(i + 1), **structure_to_record(s)}
               for i, s in enumerate(structures)]
    records[3]["frac_coords"] = [0.0, 0.0, 0.0, 0.5]  # cannot be rebuilt
    pd.DataFrame(records).to_parquet(tmp_path / "data.parquet")
    counts = represent_file(tmp_path / "data.parquet", FakeBackbone(), tmp_path / "rep.parquet",
                            tmp_path / "rejected.csv", batch_size=2)
    assert counts == (3, 2)
    represented = pd.read_parquet(tmp_path / "rep.parquet")
    rejected = pd.read_csv(tmp_path / "rejected.csv").set_index("id")["reason"]
    assert list(represented.columns) == frozen.REPRESENTATION_COLUMNS
    assert sorted([*represented["id"], *rejected.index]) == [f"mp-{i}" for i in range(5)]
    assert rejected["mp-1"] == "element Xe outside fake's element types"
    assert rejected["mp-3"].startswith("cannot build its structure")
    assert represented["id"].tolist() == ["mp-0", "mp-2", "mp-4"]
    expected = FakeBackbone().represent([structures[i] for i in (0, 2, 4)], 2)
    np.testing.assert_allclose(np.stack(represented["features"].to_numpy()), expected, rtol=1e-12)
    np.testing.assert_allclose(represented["target"], [1.0, 3.0, 5.0])


def synthetic_materials(n: int, prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    """``id, formula, target, features`` with log10 κ = 1 + features · (0.3, -0.2, 0.1)."""
    features = rng.normal(size=(n, 3))
    return pd.DataFrame({"id": [f"{prefix}-{i:03d}" for i in range(n)],
                         "formula": [FORMULAS[i % len(FORMULAS)] for i in range(n)],
                         "target": 10.0 ** (1.0 + features @ np.array([0.3, -0.2, 0.1])),
                         "features": list(features)})


def write_inputs(tmp_path: Path, materials: dict[str, pd.DataFrame],
                 drop: Sequence[str] = ()) -> tuple[dict[str, Path], dict[str, Path]]:
    """Data and representation parquet files of ``materials``; ids in ``drop`` get no representation."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data, representations = {}, {}
    for key, table in materials.items():
        data[key], representations[key] = tmp_path / f"{key}.parquet", tmp_path / f"{key}.rep.parquet"
        table.drop(columns="features").assign(dataset=key).to_parquet(data[key])
        table[~table["id"].isin(drop)].to_parquet(representations[key])
    return data, representations


def run_frozen(tmp_path: Path, materials: dict[str, pd.DataFrame], drop: Sequence[str] = (),
               heldout_sets: Sequence[str] = ("Dataset1", "MIX")) -> tuple[pd.DataFrame, pd.DataFrame]:
    data, representations = write_inputs(tmp_path, materials, drop)
    write_frozen_protocols(data, representations, ["Dataset1", "MIX"], ["Dataset1", "Dataset2", "MIX"],
                           [0, 5], 0.25, heldout_sets, 3, 7, REGRESSOR, "fake", tmp_path / "paper.parquet",
                           tmp_path / "heldout.parquet")
    return pd.read_parquet(tmp_path / "paper.parquet"), pd.read_parquet(tmp_path / "heldout.parquet")


@pytest.fixture(scope="module")
def two_datasets() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    return {"dataset1": synthetic_materials(40, "mp", rng), "dataset2": synthetic_materials(24, "hh", rng)}


def keys(frame: pd.DataFrame, columns: Sequence[str]) -> set[tuple[object, ...]]:
    return set(map(tuple, frame[list(columns)].to_numpy().tolist()))


def test_frozen_uses_the_forest_splits(tmp_path: Path, two_datasets: dict[str, pd.DataFrame]) -> None:
    paper, heldout = run_frozen(tmp_path, two_datasets)
    assert list(paper.columns) == PAPER_COLUMNS and list(heldout.columns) == HELDOUT_COLUMNS
    assert set(paper["step"]) == {"frozen"} and set(paper["backbone"]) == {"fake"}
    assert set(paper["status"]) == {"ok"}
    assert (paper["fit_s"] > 0).all() and (heldout["fit_s"] > 0).all()
    materials = {key: table.drop(columns="features") for key, table in two_datasets.items()}
    rf = paper_protocol_predictions(materials, ["Dataset1", "MIX"], ["Dataset1", "Dataset2", "MIX"], [0, 5],
                                    0.25, forest(5, 1, 1), "RF")
    by_run = ["train_on", "run", "test_on", "id"]
    assert keys(paper, by_run) == keys(rf, by_run) and len(paper) == len(rf)
    rf_heldout = heldout_predictions(materials, ["Dataset1", "MIX"], 3, 7, 0.25, forest(5, 1, 1), "RF")
    by_fold = ["train_on", "fold", "seed", "id"]
    assert keys(heldout, by_fold) == keys(rf_heldout, by_fold) and len(heldout) == len(rf_heldout)


def test_material_without_features_is_left_out(tmp_path: Path, two_datasets: dict[str, pd.DataFrame],
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kappaflow.frozen"):
        paper, heldout = run_frozen(tmp_path, two_datasets, drop=["mp-007"])
    assert "dataset1: 1 of 40 materials have no fake representation" in caplog.text
    assert "dataset2: 0 of 24" in caplog.text
    assert "mp-007" not in set(paper["id"]) | set(heldout["id"])
    full_paper, full_heldout = run_frozen(tmp_path / "all", two_datasets)
    assert "mp-007" in set(full_paper["id"]) and "mp-007" in set(full_heldout["id"])
    by_run = ["train_on", "run", "test_on", "id"]
    assert keys(paper, by_run) == {key for key in keys(full_paper, by_run) if key[-1] != "mp-007"}
    by_fold = ["train_on", "fold", "id"]
    assert keys(heldout, by_fold) == {key for key in keys(full_heldout, by_fold) if key[-1] != "mp-007"}


def test_linear_features_are_learned(tmp_path: Path) -> None:
    table = synthetic_materials(400, "mp", np.random.default_rng(11))
    shuffled = table.assign(features=list(np.random.default_rng(12).permutation(np.stack(table["features"]))))
    errors = {}
    for name, dataset1 in (("true", table), ("shuffled", shuffled)):
        out = tmp_path / name
        data, representations = write_inputs(out, {"dataset1": dataset1})
        write_frozen_protocols(data, representations, ["Dataset1"], ["Dataset1"], [0], 0.2, ["Dataset1"], 5,
                               1, {**REGRESSOR, "max_iter": 60}, "fake", out / "paper.parquet",
                               out / "heldout.parquet")
        heldout = pd.read_parquet(out / "heldout.parquet")
        assert sorted(heldout["id"]) == sorted(table["id"])  # every material predicted out of fold once
        errors[name] = mape(heldout["kappa_true"], heldout["kappa_pred"])
    assert errors["true"] < 0.2
    assert errors["shuffled"] > 3 * errors["true"]
