"""Ensemble prediction: loading runs once, mean/std over the runs, per-structure errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _predict_helpers import write_bad_structures
from _tiny_ensemble import tiny_models, tiny_trusted_models, write_trust_files
from kappaflow.graphs import structure_to_record
from kappaflow.inputs import Item, read_inputs
from kappaflow.predict import (
    ModelError,
    ensemble_checkpoints,
    ensemble_outputs,
    graph_set,
    load_ensemble,
    mean_std,
    predict_items,
    resolve_device,
)
from kappaflow.training.checkpoint import load_trained
from kappaflow.training.predict import predict_kappa
from pymatgen.core import Lattice, Structure


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def structures(mirror_dir: Path) -> list[Structure]:
    return [Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json") for mp_id in ("mp-1000", "mp-10010", "mp-10044")]


def test_mean_and_std_match_a_manual_computation(models: Path, structures: list[Structure]) -> None:
    folder = models / "stepIII" / "MIX"
    ensemble = load_ensemble(folder)
    assert ensemble.runs == ["run1", "run2", "run3"] and ensemble.name == "stepIII/MIX"
    records = [{"id": str(i), "dataset": "user", "target": np.nan, **structure_to_record(s)} for i, s in enumerate(structures)]
    graphs = graph_set(records, 4.0)
    manual = np.stack([predict_kappa(*load_trained(folder / f"run{seed}" / "best.ckpt"), graphs) for seed in (1, 2, 3)])
    kappa, features = ensemble_outputs(ensemble, graphs, batch_size=2)
    np.testing.assert_allclose(kappa, manual, rtol=1e-5)
    assert features.shape == (3, len(structures), 4)  # the tiny backbone's 4 output features per model
    table = predict_items([Item(f"s{i}", structure=s) for i, s in enumerate(structures)], ensemble)
    np.testing.assert_allclose(table["pred_mean_wmk"], manual.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(table["pred_std_wmk"], manual.std(axis=0, ddof=1), rtol=1e-4)
    assert (table["n_models"] == 3).all() and table["error"].isna().all()
    assert list(table["formula"]) == [s.composition.reduced_formula for s in structures]


def test_a_model_predicting_kappa_at_or_below_zero_flags_the_row(
    models: Path, structures: list[Structure], monkeypatch: pytest.MonkeyPatch
) -> None:
    """κ ≤ 0 is flagged, not clipped: the mean keeps the model's value."""
    from kappaflow import predict

    kappa = np.array([[-0.4, 1.0, 2.0], [0.6, 1.2, 2.2], [0.5, 1.1, 2.1]])
    monkeypatch.setattr(predict, "ensemble_outputs", lambda ensemble, graphs, batch_size: (kappa, np.zeros((3, 3, 4))))
    table = predict_items([Item(f"s{i}", structure=s) for i, s in enumerate(structures)],
                          load_ensemble(models / "stepIII" / "MIX"))
    assert list(table["unphysical"]) == [True, False, False]
    np.testing.assert_allclose(table["pred_mean_wmk"], kappa.mean(axis=0))


def test_unseen_elements_are_those_no_run_learned_from(models: Path) -> None:
    """A structure made of training elements has none unseen; one with two other elements names them."""
    from kappaflow.graphs import ELEMENT_TYPES
    from pymatgen.core import Lattice

    ensemble = load_ensemble(models / "stepIII" / "MIX")
    seen = sorted(ensemble.training_elements)
    assert 2 <= len(seen) < 30, "the tiny ensemble learned from a dozen binaries"
    novel = [symbol for symbol in ("Cs", "La", "Sc", "Y", "Hf", "Ta") if symbol not in seen][:2]
    rock_salt = [[0, 0, 0], [0.5, 0.5, 0.5]]
    table = predict_items([Item("known", structure=Structure(Lattice.cubic(4.2), seen[:2], rock_salt)),
                           Item("novel", structure=Structure(Lattice.cubic(4.2), novel, rock_salt))], ensemble)
    assert list(table["unseen_elements"]) == ["", ",".join(sorted(novel))]
    assert set(seen) <= set(ELEMENT_TYPES)


def test_trust_columns_from_the_ensemble_folder(models: Path, tmp_path: Path, mirror_dir: Path) -> None:
    """With domain.parquet and trust.json beside the runs: a training material is its own nearest neighbour
    at distance 0 and in the domain, the interval is the calibrated one; without them, the columns say why."""
    from kappaflow.graphs import read_graph_set

    def predict_one(folder: Path, mp_id: str) -> pd.Series:
        structure = Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json")
        return predict_items([Item(mp_id, structure=structure)], load_ensemble(folder)).iloc[0]

    plain = predict_one(models / "stepIII" / "MIX", "mp-1000")
    assert plain["in_domain"] is None and not plain["calibrated"] and "ensemble_trust" in plain["calibration_note"]
    trusted = tiny_trusted_models(tmp_path, {"scale": 1.7, "domain_threshold": 3.0, "domain_note": "test"})
    graphs = read_graph_set(models.parent.parent / "graphs" / "dataset1.parquet")
    row = predict_one(trusted / "stepIII" / "MIX", graphs.ids[0])
    assert row["nearest_id"] == graphs.ids[0] and row["nearest_distance"] < 1e-3  # float32 rounding of the features
    assert row["nearest_kappa_wmk"] == pytest.approx(graphs.targets[0]) and row["in_domain"]
    assert row["calibrated"] and row["calibration_note"] == ""
    assert row["kappa_low_wmk"] < row["pred_mean_wmk"] < row["kappa_high_wmk"]
    centre = np.sqrt(row["kappa_low_wmk"] * row["kappa_high_wmk"])
    assert centre == pytest.approx(row["pred_mean_wmk"])  # symmetric in log space around the mean


def test_single_model_has_nan_std() -> None:
    mean, std = mean_std(np.array([[1.0, 2.0]]))
    assert list(mean) == [1.0, 2.0] and np.isnan(std).all()


def test_bad_structures_get_errors_and_good_ones_predictions(models: Path, tmp_path: Path, structures) -> None:
    bad = write_bad_structures(tmp_path)
    items = read_inputs([str(p) for p in bad.values()]) + [Item("good", structure=structures[0])]
    table = predict_items(items, load_ensemble(models / "stepIII" / "MIX")).set_index("input")
    assert "unreadable CIF" in table.loc[str(bad["unreadable"]), "error"]
    assert "element(s) Rn outside MEGNet" in table.loc[str(bad["element"]), "error"]
    assert "isolated atom" in table.loc[str(bad["isolated"]), "error"] and "4.0 Å" in table.loc[str(bad["isolated"]), "error"]
    assert np.isnan(table.loc[str(bad["isolated"]), "pred_mean_wmk"]) and table.loc[str(bad["isolated"]), "n_models"] == 0
    assert np.isfinite(table.loc["good", "pred_mean_wmk"]) and table.loc["good", "n_models"] == 3


def test_collapsed_runs_are_left_out(models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stepIII" / "MIX"
    shutil.copytree(models / "stepIII" / "MIX", folder)
    info = json.loads((folder / "run2" / "run.json").read_text())
    (folder / "run2" / "run.json").write_text(json.dumps({**info, "status": "collapsed"}))
    assert [p.parent.name for p in ensemble_checkpoints(folder)] == ["run1", "run3"]
    assert [p.parent.name for p in ensemble_checkpoints(folder / "run1")] == ["run1"]


def test_missing_or_empty_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        ensemble_checkpoints(tmp_path / "nope")
    with pytest.raises(ModelError, match="no usable"):
        ensemble_checkpoints(tmp_path)


def test_empty_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "best.ckpt").write_bytes(b"")
    with pytest.raises(ModelError, match=r"run1/best.ckpt: not a readable kappaflow checkpoint \(empty file\)"):
        load_ensemble(tmp_path)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def finetuned_models(tmp_path_factory: pytest.TempPathFactory, mirror_dir: Path) -> Path:
    """Two runs (seeds 1, 2) of M3GNet-2018 fine-tuned one epoch on 12 Dataset1 materials, laid out as the
    workflow's results/finetuned/<backbone>/step<step>/<set>/ (no domain or trust file)."""
    import pyarrow as pa
    from _schema import run_options
    from kappaflow.graphs import STRUCTURE_SCHEMA
    from kappaflow.training.finetune import FinetuneSpec, finetune_run

    folder = tmp_path_factory.mktemp("finetuned")
    labels = pd.read_csv(mirror_dir / "hq" / "dataset1.csv")
    rows = []
    for mp_id, kappa in zip(labels.mp_id, labels.ltc_wmk, strict=True):
        path = mirror_dir / "mp" / "structures" / f"{mp_id}.json"
        if path.is_file() and len(rows) < 12:
            structure = Structure.from_file(path)
            rows.append({"id": mp_id, "dataset": "dataset1", "target": float(kappa), **structure_to_record(structure)})
    pa.Table.from_pylist(rows, schema=STRUCTURE_SCHEMA).to_pandas().to_parquet(folder / "dataset1.parquet")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for seed in (1, 2):
        finetune_run(FinetuneSpec(**{
            **run_options(), "backbone": "m3gnet-2018-eform", "train_on": "Dataset1", "seed": seed,
            "out_dir": str(folder / "ensemble" / f"run{seed}"), "data_paths": {"dataset1": str(folder / "dataset1.parquet")},
            "pretrained_root": str(mirror_dir / "pretrained"), "epochs": 1, "batch_size": 4, "head_hidden": [8, 8],
        }), progress_bar=False)
    torch.set_num_threads(threads)
    return folder / "ensemble"


def test_a_fine_tuned_backbone_ensemble_predicts_with_its_own_graphs(
    finetuned_models: Path, structures: list[Structure], mirror_dir: Path
) -> None:
    """Runs of another backbone fine-tuned by the workflow: each structure in the backbone's own graphs, the mean
    of every run's κ (each with its own scaler), the backbone's limits as errors, and no trust file said so."""
    from kappaflow.training.finetune import load_finetuned

    ensemble = load_ensemble(finetuned_models, pretrained_root=mirror_dir / "pretrained")
    assert ensemble.backbone is not None and ensemble.runs == ["run1", "run2"] and ensemble.cutoff == 5.0
    manual = []
    for seed in (1, 2):
        net, scaler = load_finetuned(finetuned_models / f"run{seed}" / "best.ckpt", mirror_dir / "pretrained")
        with torch.no_grad():
            manual.append(scaler.inverse(net(net.collate(structures)).double().numpy()))
    americium = Structure(Lattice.cubic(4.9), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    items = [*(Item(f"s{i}", structure=s) for i, s in enumerate(structures)), Item("am", structure=americium)]
    table = predict_items(items, ensemble, batch_size=2)
    np.testing.assert_allclose(table["pred_mean_wmk"][:3], np.mean(manual, axis=0), rtol=1e-5)
    assert table["error"][:3].isna().all() and (table["n_models"][:3] == 2).all()
    assert "Am" in table["error"][3] and table["n_models"][3] == 0
    assert not table["calibrated"][:3].any() and table["calibration_note"][0].startswith("no domain.parquet")


def test_a_fine_tuned_backbone_ensemble_with_its_trust_files(
    finetuned_models: Path, tmp_path: Path, mirror_dir: Path
) -> None:
    """domain.parquet and trust.json as rule finetune_trust writes them beside a fine-tuned backbone's ensemble:
    a material it trained on is its own nearest neighbour in that backbone's representation, in the domain, and
    the interval is calibrated."""
    folder = tmp_path / "trusted"
    shutil.copytree(finetuned_models, folder)
    write_trust_files(folder, {"scale": 1.5, "domain_threshold": 3.0, "domain_note": "test"})
    assert json.loads((folder / "trust.json").read_text())["ensemble"] == "m3gnet-2018-eform/stepII/Dataset1"
    trained_on = pd.read_parquet(folder / "run1" / "features.parquet")
    mp_id = trained_on["id"][trained_on["part"] == "train"].iloc[0]
    structure = Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json")
    ensemble = load_ensemble(folder, pretrained_root=mirror_dir / "pretrained")
    row = predict_items([Item(mp_id, structure=structure)], ensemble).iloc[0]
    assert row["nearest_id"] == mp_id and row["nearest_distance"] < 1e-3 and row["in_domain"]
    assert row["calibrated"] and row["kappa_low_wmk"] < row["pred_mean_wmk"] < row["kappa_high_wmk"]


def test_a_fine_tuned_backbone_without_its_pretrained_files_is_one_clear_error(
    finetuned_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no resources/pretrained here
    with pytest.raises(ModelError, match=r"fine-tuned m3gnet-2018-eform.*resources/pretrained/M3GNet-MP-2018.6.1-Eform"):
        load_ensemble(finetuned_models)


def test_runs_of_different_networks_are_refused(
    models: Path, finetuned_models: Path, tmp_path: Path, mirror_dir: Path
) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(models / "stepIII" / "MIX" / "run1", mixed / "run1")
    shutil.copytree(finetuned_models / "run2", mixed / "run2")
    with pytest.raises(ModelError, match=r"mixes runs of different networks \(m3gnet-2018-eform, megnet\)"):
        load_ensemble(mixed, pretrained_root=mirror_dir / "pretrained")
