from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _schema import run_options
from kappaflow.heldout import baseline_heldout, fold_indices, fold_of, set_fold_indices, train_fold
from kappaflow.training.splits import SplitError

IDS = np.array([f"mp-{i}" for i in range(53)], dtype=object)


@pytest.mark.parametrize("k", [2, 5])
def test_parts_disjoint_and_cover(k: int) -> None:
    tests = []
    for fold in range(k):
        parts = fold_indices(IDS, fold, k, seed=1, val_fraction=0.2)
        train, val, test = set(parts.train), set(parts.val), set(parts.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(range(len(IDS)))
        assert len(val) > 0 and len(train) > len(val)
        tests.append(parts.test)
    all_tests = np.concatenate(tests)
    assert sorted(all_tests) == list(range(len(IDS)))  # every material is tested exactly once


def test_folds_depend_on_ids_not_order() -> None:
    shuffled = IDS[::-1].copy()
    a = dict(zip(IDS, fold_of(IDS, 5, 7), strict=True))
    b = dict(zip(shuffled, fold_of(shuffled, 5, 7), strict=True))
    assert a == b
    assert not np.array_equal(fold_of(IDS, 5, 7), fold_of(IDS, 5, 8))


def test_mix_folds_are_union_of_dataset_folds() -> None:
    ids = {"dataset1": IDS, "dataset2": np.array([f"hh-{i}" for i in range(31)], dtype=object)}
    mix = set_fold_indices("MIX", ids, 1, 3, 2, 0.2)
    d1 = set_fold_indices("Dataset1", ids, 1, 3, 2, 0.2)
    np.testing.assert_array_equal(mix["dataset1"].test, d1["dataset1"].test)
    with pytest.raises(ValueError, match="held-out"):
        set_fold_indices("AFLOW", {"aflow": IDS}, 0, 3, 2, 0.2)


def test_too_few_materials() -> None:
    with pytest.raises(SplitError):
        fold_of(IDS[:3], 5, 1)
    with pytest.raises(SplitError):
        fold_of(IDS, 1, 1)


def test_baseline_heldout_table_columns() -> None:
    from kappaflow.evaluation.tables import heldout_table

    rng = np.random.default_rng(0)
    formulas = ["NaCl", "KCl", "MgO", "GaAs", "InP", "ZnS", "CdTe", "AlN", "GaN", "SiC", "BN", "LiF"] * 2
    materials = {"dataset1": pd.DataFrame({"id": [f"mp-{i}" for i in range(24)], "formula": formulas,
                                           "target": rng.uniform(1, 100, 24)})}
    predictions = baseline_heldout(materials, ["Dataset1"], k=3, seed=0, val_fraction=0.2, n_estimators=10)
    assert sorted(predictions["id"]) == sorted(materials["dataset1"]["id"])  # each material held out once
    table = heldout_table(predictions)
    assert table[["step", "train_on", "n_folds", "n_materials"]].values.tolist() == [["RF", "Dataset1", 3, 24]]
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


def test_train_fold_never_trains_on_test(tmp_path: Path, tiny_graphs: dict[str, str], pretrained_dir: Path) -> None:
    from kappaflow.graphs import read_graph_set

    tiny = {"dim_node_embedding": 8, "dim_edge_embedding": 16, "hidden_layer_sizes_input": [16, 8],
            "hidden_layer_sizes_conv": [16, 16, 8], "hidden_layer_sizes_output": [8, 4], "nblocks": 1}
    out = tmp_path / "predictions.parquet"
    frame = train_fold("I", "Dataset1", fold=1, k=3, seed=2, graph_paths=tiny_graphs, pretrained_dir=pretrained_dir,
                       work_dir=tmp_path / "work", output=out, init_args=tiny,
                       **run_options(epochs=1, batch_size=4, head_hidden=[8], val_fraction=0.25))
    ids = read_graph_set(tiny_graphs["dataset1"]).ids
    parts = fold_indices(ids, 1, 3, 2, 0.25)
    assert sorted(frame["id"]) == sorted(ids[parts.test])
    fit_ids = set(read_graph_set(tmp_path / "work" / "graphs" / "dataset1.parquet").ids)
    assert fit_ids == set(ids[np.concatenate([parts.train, parts.val])])
    assert not fit_ids & set(frame["id"])  # the runner never saw a test material
    run = json.loads((tmp_path / "work" / "model" / "run.json").read_text())
    assert (run["n_train"], run["n_val"]) == (len(parts.train), len(parts.val))
    assert pd.read_parquet(out).equals(frame)
    assert list(frame.columns) == ["step", "train_on", "fold", "id", "formula", "kappa_true", "kappa_pred", "status"]
