"""Fine-tuning a backbone other than MEGNet through its interface (kappaflow.training.finetune)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _schema import run_options
from kappaflow.backbones import load_backbone
from kappaflow.backbones.network import BackboneNet
from kappaflow.domain import features_frame
from kappaflow.graphs import STRUCTURE_SCHEMA, structure_to_record
from kappaflow.heldout import fold_indices
from kappaflow.training.finetune import (
    ENSEMBLE_COLUMNS,
    HELDOUT_COLUMNS,
    PREDICTION_COLUMNS,
    FinetuneSpec,
    Fold,
    finetune_run,
    heldout_ensemble,
    load_finetuned,
    load_stage1,
    predict_part,
    split_parts,
)
from kappaflow.training.splits import split_indices
from pymatgen.core import Lattice, Structure

#: A backbone of the mirror with three-body terms and its own 5 Å graphs: nothing of MEGNet's path applies.
BACKBONE = "m3gnet-2018-eform"


@pytest.fixture(scope="module")
def pretrained_root(mirror_dir: Path) -> Path:
    return mirror_dir / "pretrained"


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_spec(tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, **overrides) -> FinetuneSpec:
    values = {
        **run_options(), "backbone": BACKBONE, "train_on": "Dataset1", "seed": 1, "out_dir": str(tmp_path / "run1"),
        "data_paths": graph_paths, "pretrained_root": str(pretrained_root), "epochs": 2, "batch_size": 4,
        "head_hidden": [8, 8],
    }
    return FinetuneSpec(**{**values, **overrides})


def first_weight(backbone_state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The element embedding of M3GNet (its first layer)."""
    return next(value for key, value in backbone_state.items() if "embedding" in key and value.dim() == 2)


def test_run_trains_the_backbone_and_predicts_its_validation_split(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, one_thread
) -> None:
    spec = make_spec(tmp_path, graph_paths, pretrained_root)
    pretrained = {k: v.clone() for k, v in load_backbone(BACKBONE, pretrained_root).state_dict().items()}
    assert finetune_run(spec, progress_bar=False) in ("ok", "collapsed")
    out = Path(spec.out_dir)
    assert not out.with_name("run1.partial").exists()
    predictions = pd.read_parquet(out / "predictions.parquet")
    table = pd.read_parquet(graph_paths["dataset1"])
    val_ids = table["id"].to_numpy(object)[split_indices(table["id"].to_numpy(object), 1, spec.val_fraction)[1]]
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert sorted(predictions["id"]) == sorted(val_ids)
    assert set(predictions["test_on"]) == {"Dataset1"} and set(predictions["backbone"]) == {BACKBONE}
    assert np.isfinite(predictions["kappa_pred"]).all()
    info = json.loads((out / "run.json").read_text())
    assert info["epochs_run"] == 2 and info["n_train"] + info["n_val"] == len(table) and info["n_rejected"] == 0
    assert len(pd.read_csv(out / "metrics.csv")) == 2

    net, scaler = load_finetuned(out / "best.ckpt", pretrained_root)
    train, val, test, _ = split_parts(net.backbone, "Dataset1", graph_paths, 1, spec.val_fraction)
    assert test.materials.equals(val.materials)  # the paper's protocol reports its validation split
    kappa, val_features = predict_part(net, scaler, val, 3)
    np.testing.assert_allclose(kappa, predictions["kappa_pred"], rtol=1e-5)
    # features.parquet: the best network's representation of every material it fitted on, by part
    features = pd.read_parquet(out / "features.parquet")
    assert sorted(features["id"]) == sorted(table["id"]) and set(features["part"]) == {"train", "val"}
    assert sorted(features["id"][features["part"] == "val"]) == sorted(val_ids)
    stored = np.stack(features.set_index("id").loc[val.materials["id"], "features"].to_numpy())
    assert val_features.shape == stored.shape and val_features.shape[1] > 1
    np.testing.assert_allclose(val_features, stored, rtol=1e-4, atol=1e-6)
    # fine-tuning trained the backbone itself, down to its first layer
    assert not torch.equal(first_weight(net.backbone.state_dict()), first_weight(pretrained))


def test_frozen_backbone_keeps_its_pretrained_weights(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, one_thread
) -> None:
    spec = make_spec(tmp_path, graph_paths, pretrained_root, freeze_backbone=True, epochs=1)
    finetune_run(spec, progress_bar=False)
    net, _ = load_finetuned(Path(spec.out_dir) / "best.ckpt", pretrained_root)
    pretrained = load_backbone(BACKBONE, pretrained_root).state_dict()
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, pretrained[key]), key


def test_structures_the_backbone_cannot_take_are_rejected_with_the_reason(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path
) -> None:
    table = pd.read_parquet(graph_paths["dataset1"])[[field.name for field in STRUCTURE_SCHEMA]]
    americium = Structure(Lattice.cubic(4.9), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    extra = {"id": "mp-am", "dataset": "dataset1", "formula": "AmO", "target": 1.0,
             **structure_to_record(americium)}
    path = tmp_path / "dataset1.parquet"
    pd.concat([table, pd.DataFrame([extra])], ignore_index=True).to_parquet(path)
    backbone = load_backbone(BACKBONE, pretrained_root)
    train, val, _, rejected = split_parts(backbone, "Dataset1", {"dataset1": str(path)}, 1, 0.2)
    assert rejected.to_dict("records") == [
        {"id": "mp-am", "dataset": "dataset1", "reason": rejected["reason"].iloc[0]}
    ] and "Am" in rejected["reason"].iloc[0]
    assert len(train.materials) + len(val.materials) + len(rejected) == len(table) + 1
    assert len(train.structures) == len(train.materials) and "mp-am" not in set(val.materials["id"])


def test_a_row_without_kappa_is_named(tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path) -> None:
    table = pd.read_parquet(graph_paths["dataset1"])
    table.loc[3, "target"] = np.nan
    path = tmp_path / "dataset1.parquet"
    table.to_parquet(path)
    with pytest.raises(ValueError, match=f"{path}.*{table['id'][3]}"):
        split_parts(load_backbone(BACKBONE, pretrained_root), "Dataset1", {"dataset1": str(path)}, 1, 0.2)


def test_heldout_run_predicts_the_outer_fold_it_never_saw(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, one_thread
) -> None:
    """The held-out split is MEGNet's (kappaflow.heldout.fold_indices), and the run predicts its outer test fold."""
    fold = Fold(index=1, k=3, seed=7)
    spec = make_spec(tmp_path, graph_paths, pretrained_root, fold=fold, seed=2, epochs=1)
    finetune_run(spec, progress_bar=False)
    predictions = pd.read_parquet(Path(spec.out_dir) / "predictions.parquet")
    ids = pd.read_parquet(graph_paths["dataset1"])["id"].to_numpy(object)
    parts = fold_indices(ids, 1, 3, 7, 2, spec.val_fraction)
    assert list(predictions.columns) == HELDOUT_COLUMNS
    assert sorted(predictions["id"]) == sorted(ids[parts.test]) and set(predictions["fold"]) == {1}
    features = pd.read_parquet(Path(spec.out_dir) / "features.parquet")
    assert sorted(features["id"]) == sorted(ids)
    assert sorted(features["id"][features["part"] == "test"]) == sorted(ids[parts.test])
    info = json.loads((Path(spec.out_dir) / "run.json").read_text())
    assert (info["n_train"], info["n_val"], info["fold"]) == (len(parts.train), len(parts.val), 1)


def test_step_three_starts_from_every_weight_of_its_stage1_run(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, one_thread
) -> None:
    """Stage 1 on AFLOW, then step III from it: with a learning rate of 0 the stage-2 network is the stage-1 one,
    backbone and head, and it knows the elements of both stages."""
    stage1 = make_spec(tmp_path, graph_paths, pretrained_root, step="stage1", train_on="AFLOW", epochs=1,
                       out_dir=str(tmp_path / "stage1"))
    assert finetune_run(stage1, progress_bar=False) in ("ok", "collapsed")
    stage1_ckpt = str(tmp_path / "stage1" / "best.ckpt")
    step3 = make_spec(tmp_path, graph_paths, pretrained_root, step="III", init_checkpoint=stage1_ckpt, epochs=1,
                      lr=0.0)
    finetune_run(step3, progress_bar=False)
    first, _ = load_finetuned(stage1_ckpt, pretrained_root)
    second, _ = load_finetuned(Path(step3.out_dir) / "best.ckpt", pretrained_root)
    stage1_state = first.state_dict()
    for key, value in second.state_dict().items():
        assert torch.equal(value, stage1_state[key]), key
    info = json.loads((Path(step3.out_dir) / "run.json").read_text())
    stage1_info = json.loads((tmp_path / "stage1" / "run.json").read_text())
    assert info["step"] == "III" and info["init_checkpoint"] == stage1_ckpt and stage1_info["step"] == "stage1"
    assert set(stage1_info["training_elements"]) <= set(info["training_elements"])
    assert set(pd.read_parquet(Path(step3.out_dir) / "predictions.parquet")["step"]) == {"III"}
    # a stage-2 network of another shape cannot start from it
    other = BackboneNet(load_backbone(BACKBONE, pretrained_root), [4])
    with pytest.raises(ValueError, match="stage1/best.ckpt: the stage-1 network"):
        load_stage1(other, stage1_ckpt)
    with pytest.raises(FileNotFoundError, match="rule finetune_stage1"):
        load_stage1(other, tmp_path / "missing.ckpt")


@pytest.mark.parametrize(("step", "init"), [("III", None), ("II", "stage1.ckpt"), ("I", None)])
def test_only_step_three_starts_from_a_stage1_checkpoint(
    tmp_path: Path, graph_paths: dict[str, str], pretrained_root: Path, step: str, init: str | None
) -> None:
    with pytest.raises(ValueError, match="step"):
        make_spec(tmp_path, graph_paths, pretrained_root, step=step, init_checkpoint=init)


#: Two folds of five materials on a line: fold 0 tests a and b, fold 1 tests c.
MATERIALS = ["a", "b", "c", "d", "e"]
POSITION = {"a": 0.0, "b": 1.0, "c": 2.1, "d": 3.3, "e": 4.6}
FOLD_TEST = {0: ["a", "b"], 1: ["c"]}
TRUE_KAPPA = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}


def member(fold: int, seed: int, kappa: list[float], status: str = "ok") -> pd.DataFrame:
    """One held-out run's predictions of its fold's test materials."""
    ids = FOLD_TEST[fold]
    return pd.DataFrame({"step": "II", "backbone": BACKBONE, "train_on": "Dataset1", "fold": fold, "seed": seed,
                         "id": ids, "formula": [name.upper() for name in ids],
                         "kappa_true": [TRUE_KAPPA[name] for name in ids], "kappa_pred": kappa, "status": status,
                         "fit_s": 1.0})


def member_features(fold: int, seed: int) -> pd.DataFrame:
    """The run's features.parquet: materials on a line (member 2 scales it, and lists them in reverse)."""
    ids = MATERIALS if seed == 1 else MATERIALS[::-1]
    part = ["test" if name in FOLD_TEST[fold] else "train" for name in ids]
    features = np.array([[POSITION[name] * seed, 1.0] for name in ids])
    return features_frame(ids, [name.upper() for name in ids], [TRUE_KAPPA[name] for name in ids], part, features)


def ensemble(members: list[tuple[int, int, list[float], str]]) -> pd.DataFrame:
    return heldout_ensemble([member(*row) for row in members], [member_features(*row[:2]) for row in members])


def test_heldout_ensemble_averages_the_usable_members() -> None:
    table = ensemble([(0, 1, [1.0, 2.0], "ok"), (0, 2, [3.0, 4.0], "ok"), (0, 3, [99.0, 99.0], "collapsed"),
                      (1, 1, [3.0], "ok"), (1, 2, [5.0], "ok")])
    assert list(table.columns) == ENSEMBLE_COLUMNS
    assert table["kappa_pred"].tolist() == [2.0, 3.0, 4.0] and (table["n_models"] == 2).all()
    # the spread of the usable members' log10 κ (sample std of two values: |difference| / √2)
    expected = np.abs(np.log10([3.0, 4.0, 5.0]) - np.log10([1.0, 2.0, 3.0])) / np.sqrt(2)
    np.testing.assert_allclose(table["log_std"].to_numpy(), expected, rtol=1e-12)
    failed = ensemble([(0, 1, [1.0, 1.0], "diverged")])
    assert failed["kappa_pred"].isna().all() and set(failed["status"]) == {"diverged"}
    assert failed["nearest_id"].isna().all()
    single = ensemble([(0, 1, [1.0, -0.5], "ok"), (0, 2, [1.5, 2.0], "ok")])
    assert single["log_std"].isna().tolist() == [False, True], "one physical member has no spread"


def test_heldout_ensemble_names_the_closest_material_the_fold_fitted_on() -> None:
    """Each test material's nearest neighbour among its own fold's training materials, in the members' joint
    representation (the members list the materials in different orders)."""
    table = ensemble([(0, 1, [1.0, 2.0], "ok"), (0, 2, [3.0, 4.0], "ok"), (1, 1, [3.0], "ok"),
                      (1, 2, [5.0], "ok")]).set_index("id")
    # fold 0 fitted on c, d, e: both a and b are closest to c; fold 1 fitted on a, b, d, e: c is closest to b
    assert table["nearest_id"].to_dict() == {"a": "c", "b": "c", "c": "b"}
    assert table.loc["a", "nearest_formula"] == "C" and table.loc["c", "nearest_kappa_wmk"] == 2.0
    assert table.loc["a", "nearest_distance"] > table.loc["b", "nearest_distance"] > 0
    assert table["nearest_distance"].dtype == float
