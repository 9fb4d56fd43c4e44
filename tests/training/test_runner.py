"""End-to-end runs on tiny data: outputs, scaler in checkpoint, wrong-scaler guard, resume, determinism,
collapse/divergence status, clear errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import lightning as pl
import numpy as np
import pandas as pd
import pytest
import torch
from kappaflow.training.checkpoint import load_trained, read_checkpoint
from kappaflow.training.data import read_graphs, split_set
from kappaflow.training.evaluate import evaluate_run
from kappaflow.training.predict import predict_kappa
from kappaflow.training.runner import partial_dir, prepare_partial, train_run
from kappaflow.training.scaling import TargetScaler
from kappaflow.training.splits import SplitError

HEAD = [32, 32]
TEST_SETS = ["Dataset1", "Dataset2", "MIX", "AFLOW"]


def evaluate(result, graph_paths: dict[str, str], test_sets=TEST_SETS) -> pd.DataFrame:
    """The evaluation job of a finished run (rule evaluate_run): its predictions.parquet on ``test_sets``."""
    out = result.out_dir
    return evaluate_run(out / "run.json", out / "best.ckpt", out / "features.parquet", graph_paths, test_sets,
                        out / "predictions.parquet", batch_size=5)


class SimulatedKill(RuntimeError):
    """Stands for the job being killed."""


class Kill(pl.Callback):
    """Raise after ``after`` completed epochs (checkpoints of those epochs already written)."""

    def __init__(self, after: int) -> None:
        self.after = after

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.after:
            raise SimulatedKill("simulated kill")


class KillHead(pl.Callback):
    """At the start of epoch ``at``: every ReLU of the head dead, its output a constant far from the data."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.at:
            with torch.no_grad():
                pl_module.model.head[0].bias.fill_(-1.0e4)
                pl_module.model.head[-1].bias.fill_(5.0)


class PoisonWeights(pl.Callback):
    """Make every weight NaN at the start of epoch 1."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def _state(path):
    return read_checkpoint(path)["state_dict"]


def test_outputs_follow_the_contract(tiny_spec, graph_paths):
    spec = tiny_spec(head_hidden=HEAD)
    result = train_run(spec)
    out = result.out_dir
    info = json.loads((out / "run.json").read_text())
    for key in ("step", "train_on", "seed", "status", "best_epoch", "best_val_loss", "wall_s", "n_train",
                "n_val", "scaler", "val_fraction"):
        assert key in info
    assert {"version", "commit"} <= set(info["kappaflow"]), "run.json names the code that trained it"
    assert not (out / "predictions.parquet").exists(), "evaluation is a job of its own"
    assert info["status"] in ("ok", "collapsed", "diverged")
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:3]) == ["epoch", "train_loss", "val_loss"] and len(metrics) == 3
    assert info["best_val_loss"] == pytest.approx(metrics.val_loss.min())
    assert info["best_epoch"] == int(metrics.val_loss.idxmin())
    pred = evaluate(result, graph_paths)
    pd.testing.assert_frame_equal(pred, pd.read_parquet(out / "predictions.parquet"))
    assert list(pred.columns) == ["step", "train_on", "run", "test_on", "id", "formula", "kappa_true", "kappa_pred",
                                  "unphysical", "unseen_elements", "nearest_id", "nearest_formula", "nearest_kappa_wmk",
                                  "nearest_distance"]
    assert (pred.unphysical == (pred.kappa_pred <= 0)).all()
    # domain against the run's own training split: its validation materials are never their own neighbour
    own = pred[pred.test_on == "Dataset1"]
    assert not set(own.nearest_id) & set(own.id) and (own.nearest_distance > 0).all()
    assert (own.unseen_elements.notna()).all()
    graphs = read_graphs(graph_paths)
    for test_on in TEST_SETS:
        val = split_set(test_on, graphs, spec.seed, spec.val_fraction).val
        assert list(pred.loc[pred.test_on == test_on, "id"]) == list(val.ids)
    assert np.isfinite(pred.kappa_pred).all()
    # the scaler is the training split's and is stored in the checkpoint
    split = split_set("Dataset1", graphs, 1, 0.2)
    model, scaler = load_trained(out / "best.ckpt")
    assert scaler == TargetScaler.fit(split.train.targets, spec.target)
    assert info["scaler"] == scaler.to_dict()
    assert not partial_dir(out).exists()
    # the best model's representation of every material of the training set (train and validation splits)
    features = pd.read_parquet(out / "features.parquet")
    assert features["id"].tolist() == list(graphs["dataset1"].ids)
    assert set(features.loc[features["part"] == "train", "id"]) == set(split.train.ids)
    assert set(features.loc[features["part"] == "val", "id"]) == set(split.val.ids)
    np.testing.assert_allclose(features["kappa_wmk"], graphs["dataset1"].targets)
    assert {len(row) for row in features["features"]} == {model.head[0].in_features}


def test_stage2_evaluation_uses_its_own_scaler(tiny_spec, tmp_path):
    """Step III: stage 2 refits the scaler on its own training split; predictions use that scaler."""
    stage1 = train_run(tiny_spec(step="stage1", train_on="AFLOW", head_hidden=HEAD,
                                 out_dir=str(tmp_path / "stage1" / "run1")))
    stage2 = train_run(tiny_spec(step="III", init="checkpoint", init_checkpoint=str(stage1.out_dir / "best.ckpt"),
                                 head_hidden=HEAD, out_dir=str(tmp_path / "III" / "run1")))
    assert set(stage1.info["training_elements"]) <= set(stage2.info["training_elements"]), "stage 1 counts"
    assert set(stage2.info["training_elements"]) - set(stage1.info["training_elements"]), "so does stage 2"
    _, scaler1 = load_trained(stage1.out_dir / "best.ckpt")
    model2, scaler2 = load_trained(stage2.out_dir / "best.ckpt")
    assert scaler2 != scaler1
    assert stage2.info["scaler"] == scaler2.to_dict()
    graphs = read_graphs({"dataset1": tiny_spec().graph_paths["dataset1"]})
    split = split_set("Dataset1", graphs, 1, 0.2)
    assert scaler2 == TargetScaler.fit(split.train.targets, "log10_kappa_plus_1")
    pred = evaluate(stage2, tiny_spec().graph_paths, ["Dataset1"])
    right = predict_kappa(model2, scaler2, split.val)
    wrong = predict_kappa(model2, scaler1, split.val)
    np.testing.assert_allclose(pred.kappa_pred.to_numpy(), right, rtol=1e-6)
    assert not np.allclose(pred.kappa_pred.to_numpy(), wrong, rtol=1e-3), "stage-2 predictions used the stage-1 scaler"
    # the recorded validation loss is the MAPE on κ with the stage-2 scaler
    mape = np.mean(np.abs(right - split.val.targets) / split.val.targets)
    assert stage2.best_val_loss == pytest.approx(mape, rel=1e-4)


@dataclass
class FileSpec:
    """A run spec as the runners' (an ``out_dir``, files named in a dict and in a field)."""

    out_dir: str
    data_paths: dict[str, str]
    init_checkpoint: str


@pytest.mark.parametrize("changed", ["data", "checkpoint"])
def test_a_partial_run_resumes_only_while_the_files_it_reads_are_unchanged(tmp_path, changed):
    files = {"data": tmp_path / "dataset1.parquet", "checkpoint": tmp_path / "stage1.ckpt"}
    for path in files.values():
        path.write_bytes(b"first version")
    spec = FileSpec(str(tmp_path / "run1"), {"dataset1": str(files["data"])}, str(files["checkpoint"]))
    folder, last = prepare_partial(spec)
    assert last is None
    (folder / "last.ckpt").write_bytes(b"epoch 2")
    assert prepare_partial(spec) == (folder, folder / "last.ckpt"), "same spec and files: the run resumes"
    files[changed].write_bytes(b"second version")  # same spec, same paths, other content
    folder, last = prepare_partial(spec)
    assert last is None and not (folder / "last.ckpt").exists(), f"a changed {changed} file resumed stale state"


def test_resume_equals_uninterrupted(tiny_spec, tmp_path):
    full = train_run(tiny_spec(epochs=4, head_hidden=HEAD, out_dir=str(tmp_path / "full" / "run1")))
    spec = tiny_spec(epochs=4, head_hidden=HEAD, out_dir=str(tmp_path / "killed" / "run1"))
    with pytest.raises(SimulatedKill):
        train_run(spec, callbacks=[Kill(after=2)])
    assert (partial_dir(spec.out_dir) / "last.ckpt").is_file()
    assert not (tmp_path / "killed" / "run1" / "best.ckpt").exists()
    resumed = train_run(spec)
    assert resumed.info["resumed"]
    assert resumed.best_epoch == full.best_epoch
    pd.testing.assert_frame_equal(pd.read_csv(resumed.out_dir / "metrics.csv"), pd.read_csv(full.out_dir / "metrics.csv"))
    a, b = _state(full.out_dir / "best.ckpt"), _state(resumed.out_dir / "best.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_result(tiny_spec, tmp_path):
    first = train_run(tiny_spec(step="II", init_args={}, init="pretrained", epochs=2, head_hidden=HEAD,
                                out_dir=str(tmp_path / "a" / "run1")))
    second = train_run(tiny_spec(step="II", init_args={}, init="pretrained", epochs=2, head_hidden=HEAD,
                                 out_dir=str(tmp_path / "b" / "run1")))
    pd.testing.assert_frame_equal(pd.read_csv(first.out_dir / "metrics.csv"), pd.read_csv(second.out_dir / "metrics.csv"))
    a, b = _state(first.out_dir / "best.ckpt"), _state(second.out_dir / "best.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    graph_paths = tiny_spec().graph_paths
    pd.testing.assert_frame_equal(evaluate(first, graph_paths), evaluate(second, graph_paths))


def test_nan_loss_marks_run_diverged(tiny_spec):
    result = train_run(tiny_spec(epochs=5, head_hidden=HEAD), callbacks=[PoisonWeights()])
    assert result.status == "diverged"
    metrics = pd.read_csv(result.out_dir / "metrics.csv")
    assert len(metrics) == 2 and math.isnan(metrics.val_loss.iloc[1])  # stopped, no hang
    assert result.best_epoch == 0


def test_collapsed_run_is_flagged(tiny_spec, monkeypatch):
    from kappaflow.training import runner

    def constant(model, scaler, graphs, batch_size=64):
        return np.full(len(graphs), 3.0), np.zeros((len(graphs), 2))

    monkeypatch.setattr(runner, "predict_kappa_features", constant)
    result = train_run(tiny_spec(epochs=1, head_hidden=HEAD))
    assert result.status == "collapsed"
    assert json.loads((result.out_dir / "run.json").read_text())["status"] == "collapsed"


def test_collapse_after_the_best_epoch_stops_and_fails_the_run(tiny_spec):
    result = train_run(tiny_spec(epochs=20, head_hidden=HEAD, collapse_patience=3), callbacks=[KillHead(at=2)])
    metrics = pd.read_csv(result.out_dir / "metrics.csv")
    assert list(metrics.epoch) == [0, 1, 2, 3, 4]  # stopped after 3 collapsed epochs, not 20
    assert (metrics.val_pred_rel_std.iloc[:2] > 1e-4).all() and (metrics.val_pred_rel_std.iloc[2:] < 1e-6).all()
    assert result.best_epoch in (0, 1)  # a checkpoint from before the collapse, not a trained model
    assert result.status == "collapsed"
    info = json.loads((result.out_dir / "run.json").read_text())
    assert info["collapsed_at_epoch"] == 2 and info["epochs_run"] == 5


@pytest.mark.parametrize(("patience", "epochs_run"), [(3, 3), (None, 6)])
def test_collapsed_from_the_start(tiny_spec, patience, epochs_run):
    result = train_run(tiny_spec(epochs=6, head_hidden=HEAD, collapse_patience=patience), callbacks=[KillHead(at=0)])
    assert result.status == "collapsed"
    assert result.info["epochs_run"] == epochs_run and result.info["collapsed_at_epoch"] == 0


def test_missing_stage1_checkpoint(tiny_spec, tmp_path):
    with pytest.raises(FileNotFoundError, match="stage-1 checkpoint not found"):
        train_run(tiny_spec(step="III", init="checkpoint", init_checkpoint=str(tmp_path / "missing.ckpt")))


def test_load_trained_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_trained(tmp_path / "nope.ckpt")


def test_missing_graph_file(tiny_spec, tmp_path):
    spec = tiny_spec()
    spec.graph_paths = {**spec.graph_paths, "dataset1": str(tmp_path / "gone.parquet")}
    with pytest.raises(FileNotFoundError, match="graph file for 'dataset1' not found"):
        train_run(spec)


def test_too_small_dataset(tiny_spec, graph_paths, tmp_path):
    import pyarrow.parquet as pq
    from kappaflow.graphs import GraphSet  # noqa: F401

    table = pq.read_table(graph_paths["dataset1"]).slice(0, 4)
    path = tmp_path / "dataset1.parquet"
    pq.write_table(table, path)
    spec = tiny_spec()
    spec.graph_paths = {**spec.graph_paths, "dataset1": str(path)}
    with pytest.raises(SplitError, match="too small to split"):
        train_run(spec)


def test_graphs_of_another_cutoff_than_the_backbone_are_refused(tiny_spec, graph_paths, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(graph_paths["dataset1"])
    path = tmp_path / "dataset1.parquet"
    pq.write_table(table.replace_schema_metadata({"kappaflow.cutoff": "5.0"}), path)
    spec = tiny_spec()
    spec.graph_paths = {**spec.graph_paths, "dataset1": str(path)}
    with pytest.raises(ValueError, match=r"dataset1.parquet: graphs built with a 5.0 Å cutoff, but the backbone's is 4.0"):
        train_run(spec)


def test_log10_kappa_target_with_l1_loss_trains_and_predicts_positive_kappa(tiny_spec, graph_paths):
    result = train_run(tiny_spec(head_hidden=HEAD, target="log10_kappa", loss="l1_log", grad_clip_norm=1.0))
    assert result.status == "ok"
    _, scaler = load_trained(result.out_dir / "best.ckpt")
    assert scaler.offset == 0.0 and result.info["scaler"]["offset"] == 0.0
    metrics = pd.read_csv(result.out_dir / "metrics.csv")
    assert np.isfinite(metrics[["train_loss", "val_loss"]].to_numpy()).all()
    pred = evaluate(result, graph_paths)
    assert (pred.kappa_pred > 0).all()
