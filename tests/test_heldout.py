from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _schema import run_options
from kappaflow.heldout import (
    ENSEMBLE_COLUMNS,
    fold_ensemble,
    fold_indices,
    fold_of,
    heldout_predictions,
    set_fold_indices,
    train_fold,
)
from kappaflow.training.splits import SplitError

IDS = np.array([f"mp-{i}" for i in range(53)], dtype=object)


@pytest.mark.parametrize("k", [2, 5])
def test_parts_disjoint_and_cover(k: int) -> None:
    tests = []
    for fold in range(k):
        parts = fold_indices(IDS, fold, k, fold_seed=1, run_seed=3, val_fraction=0.2)
        train, val, test = set(parts.train), set(parts.val), set(parts.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(range(len(IDS)))
        assert len(val) > 0 and len(train) > len(val)
        tests.append(parts.test)
    all_tests = np.concatenate(tests)
    assert sorted(all_tests) == list(range(len(IDS)))  # every material is tested exactly once


def test_members_share_outer_folds_not_inner_splits() -> None:
    first, second = (fold_indices(IDS, 2, 5, fold_seed=1, run_seed=seed, val_fraction=0.2) for seed in (1, 2))
    np.testing.assert_array_equal(first.test, second.test)  # the ensemble is scored on one outer fold
    assert set(first.val) != set(second.val)  # each member selects its checkpoint on its own inner split
    assert set(first.train) | set(first.val) == set(second.train) | set(second.val)


def test_folds_depend_on_ids_not_order() -> None:
    shuffled = IDS[::-1].copy()
    a = dict(zip(IDS, fold_of(IDS, 5, 7), strict=True))
    b = dict(zip(shuffled, fold_of(shuffled, 5, 7), strict=True))
    assert a == b
    assert not np.array_equal(fold_of(IDS, 5, 7), fold_of(IDS, 5, 8))


def test_mix_folds_are_union_of_dataset_folds() -> None:
    ids = {"dataset1": IDS, "dataset2": np.array([f"hh-{i}" for i in range(31)], dtype=object)}
    mix = set_fold_indices("MIX", ids, 1, 3, 2, 4, 0.2)
    d1 = set_fold_indices("Dataset1", ids, 1, 3, 2, 4, 0.2)
    np.testing.assert_array_equal(mix["dataset1"].test, d1["dataset1"].test)
    with pytest.raises(ValueError, match="held-out"):
        set_fold_indices("AFLOW", {"aflow": IDS}, 0, 3, 2, 4, 0.2)


def test_too_few_materials() -> None:
    with pytest.raises(SplitError):
        fold_of(IDS[:3], 5, 1)
    with pytest.raises(SplitError):
        fold_of(IDS, 1, 1)


def test_baseline_heldout_table_columns() -> None:
    from kappaflow.baseline import fit_predict, forest
    from kappaflow.evaluation.tables import heldout_per_run, heldout_table

    rng = np.random.default_rng(0)
    formulas = ["NaCl", "KCl", "MgO", "GaAs", "InP", "ZnS", "CdTe", "AlN", "GaN", "SiC", "BN", "LiF"] * 2
    materials = {"dataset1": pd.DataFrame({"id": [f"mp-{i}" for i in range(24)], "formula": formulas,
                                           "target": rng.uniform(1, 100, 24)})}
    predictions = heldout_predictions(materials, ["Dataset1"], k=3, seed=0, val_fraction=0.2,
                                      fit_predict=forest(10, 1, 1), step="RF")
    assert sorted(predictions["id"]) == sorted(materials["dataset1"]["id"])  # each material held out once
    assert (predictions.groupby("fold")["fit_s"].nunique() == 1).all() and (predictions["fit_s"] > 0).all()
    table1 = materials["dataset1"]
    for fold, rows in predictions.groupby("fold"):  # the forest's numbers, as before the refactoring
        parts = fold_indices(table1["id"].to_numpy(dtype=object), fold, 3, 0, 0, 0.2)
        fit, test = table1.iloc[np.concatenate([parts.train, parts.val])], table1.iloc[parts.test]
        assert rows["id"].tolist() == test["id"].tolist()
        before = fit_predict(fit["formula"], fit["target"], test["formula"], 0, 10, 1, 1)
        np.testing.assert_allclose(rows["kappa_pred"], before, rtol=1e-12)
    table = heldout_table(predictions, heldout_per_run(predictions))
    assert table[["step", "train_on", "n_folds", "n_runs", "n_materials"]].values.tolist() == [["RF", "Dataset1", 3, 3, 24]]
    assert np.isfinite(table[["mape", "mae_log10", "spearman"]].to_numpy()).all()


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory: pytest.TempPathFactory, mirror_dir: Path) -> dict[str, str]:
    """A 14-material Dataset1 graph table from mirror structures."""
    from kappaflow.graphs import featurize_record, structure_to_record, write_graph_table
    from pymatgen.core import Structure

    labels = pd.read_csv(mirror_dir / "hq" / "dataset1.csv")
    records = []
    for mp_id, kappa in zip(labels.mp_id, labels.ltc_wmk, strict=True):
        path = mirror_dir / "mp" / "structures" / f"{mp_id}.json"
        if path.is_file():
            structure = Structure.from_dict(json.loads(path.read_text()))
            record = {"id": mp_id, "dataset": "dataset1", "target": float(kappa), **structure_to_record(structure)}
            records.append(featurize_record(record, 4.0))
        if len(records) == 14:
            break
    out = tmp_path_factory.mktemp("heldout_graphs") / "dataset1.parquet"
    write_graph_table(records, out, cutoff=4.0)
    return {"dataset1": str(out)}


TINY = {"dim_node_embedding": 8, "dim_edge_embedding": 16, "hidden_layer_sizes_input": [16, 8],
        "hidden_layer_sizes_conv": [16, 16, 8], "hidden_layer_sizes_output": [8, 4], "nblocks": 1}


def train_member(tmp_path: Path, tiny_graphs: dict[str, str], pretrained_dir: Path, seed: int) -> tuple[Path, Path]:
    """One member (seed) of fold 1 of 3 of a tiny step-I Dataset1 ensemble: its predictions and features files."""
    work = tmp_path / f"run{seed}"
    train_fold("I", "Dataset1", fold=1, k=3, fold_seed=2, seed=seed, graph_paths=tiny_graphs,
               pretrained_dir=pretrained_dir, work_dir=work, output=work / "predictions.parquet",
               features_output=work / "features.parquet", init_args=TINY,
               **run_options(epochs=1, batch_size=4, head_hidden=[8], val_fraction=0.25))
    return work / "predictions.parquet", work / "features.parquet"


def test_train_fold_never_trains_on_test(tmp_path: Path, tiny_graphs: dict[str, str], pretrained_dir: Path) -> None:
    from kappaflow.graphs import read_graph_set

    out, features = train_member(tmp_path, tiny_graphs, pretrained_dir, seed=3)
    frame = pd.read_parquet(out)
    ids = read_graph_set(tiny_graphs["dataset1"]).ids
    parts = fold_indices(ids, 1, 3, 2, 3, 0.25)
    assert sorted(frame["id"]) == sorted(ids[parts.test])
    fit_ids = set(read_graph_set(tmp_path / "run3" / "graphs" / "dataset1.parquet").ids)
    assert fit_ids == set(ids[np.concatenate([parts.train, parts.val])])
    assert not fit_ids & set(frame["id"])  # the runner never saw a test material
    run = json.loads((tmp_path / "run3" / "model" / "run.json").read_text())
    assert (run["n_train"], run["n_val"], run["seed"]) == (len(parts.train), len(parts.val), 3)
    assert list(frame.columns) == ["step", "train_on", "fold", "seed", "id", "formula", "kappa_true", "kappa_pred",
                                   "status"]
    table = pd.read_parquet(features).set_index("id")
    assert sorted(table.index) == sorted(ids)  # every material of the set, test ones included
    for part, rows in (("train", parts.train), ("val", parts.val), ("test", parts.test)):
        assert (table.loc[ids[rows], "part"] == part).all()
    assert len(table["features"].iloc[0]) == 4  # the tiny backbone's output features


def test_fold_ensemble(tmp_path: Path, tiny_graphs: dict[str, str], pretrained_dir: Path) -> None:
    members = [train_member(tmp_path, tiny_graphs, pretrained_dir, seed) for seed in (1, 2)]
    table = fold_ensemble([m[0] for m in members], [m[1] for m in members], tmp_path / "ensemble.parquet")
    runs = [pd.read_parquet(m[0]) for m in members]
    assert list(table.columns) == ENSEMBLE_COLUMNS
    assert table["id"].tolist() == runs[0]["id"].tolist()
    np.testing.assert_allclose(table["kappa_pred"], (runs[0]["kappa_pred"] + runs[1]["kappa_pred"]) / 2)
    logs = np.log10(np.stack([run["kappa_pred"] for run in runs]))
    physical = (np.stack([run["kappa_pred"] for run in runs]) > 0).all(axis=0)
    np.testing.assert_allclose(table["log_std"][physical], logs.std(axis=0, ddof=1)[physical])
    assert (table["n_models"] == 2).all() and (table["status"] == "ok").all()
    assert not set(table["nearest_id"]) & set(table["id"])  # the nearest material is a training material
    assert (table["nearest_distance"] > 0).all()
    # a collapsed member is left out of the ensemble
    runs[1].assign(status="collapsed").to_parquet(members[1][0])
    single = fold_ensemble([m[0] for m in members], [m[1] for m in members], tmp_path / "ensemble.parquet")
    np.testing.assert_allclose(single["kappa_pred"], runs[0]["kappa_pred"])
    assert (single["n_models"] == 1).all() and single["log_std"].isna().all()
