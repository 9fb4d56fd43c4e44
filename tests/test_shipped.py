"""The shipped model: export with its card and check predictions, half precision, the card, the package's model."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from _tiny_ensemble import tiny_trusted_models
from kappaflow import shipped
from kappaflow.predict import ModelError, load_ensemble
from kappaflow.protocol import DEFAULT_MODEL_DIR
from kappaflow.shipped import (
    check_predictions,
    check_structures,
    describe_card,
    export_model,
    model_card,
    read_card,
)

CONFIG = {
    "training": {"target": "log10_kappa", "loss": "l1_log", "lr": 1e-3, "batch_size": 8, "epochs": 300,
                 "stage1_epochs": 300, "head_hidden": [450, 350, 350]},
    "heldout": {"folds": 5, "seeds": [1, 2, 3, 4, 5]},
}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    calibration = {"scale": 1.5, "domain_threshold": 100.0, "domain_note": "test"}
    return tiny_trusted_models(tmp_path_factory.mktemp("tiny"), calibration) / "stepIII" / "MIX"


@pytest.fixture(scope="module")
def structures(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    from kappaflow.graphs import structure_to_record
    from pymatgen.core import Structure

    records = []
    for mp_id in ("mp-1000", "mp-10044", "mp-10010"):
        structure = Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json")
        records.append({"id": mp_id, **structure_to_record(structure)})
    path = tmp_path_factory.mktemp("data") / "dataset1.parquet"
    pd.DataFrame(records).to_parquet(path)
    return check_structures([path], 2)


def _card(ensemble: Path, tmp_path: Path, heldout: bool = True) -> dict:
    table = calibration = None
    if heldout:
        table, calibration = tmp_path / "heldout_table.csv", tmp_path / "calibration.csv"
        pd.DataFrame([{"step": "III", "train_on": "MIX", "test_on": "MIX", "n_folds": 5, "n_runs": 25,
                       "n_failed": 0, "n_materials": 238, "mape": 0.31, "mae_log10": 0.12, "spearman": 0.9,
                       "mape_run_mean": 0.35, "mape_run_std": 0.05}]).to_csv(table, index=False)
        pd.DataFrame([{"step": "III", "train_on": "MIX", "scale": 1.5, "coverage_1sigma": 0.66,
                       "coverage_2sigma": 0.93}]).to_csv(calibration, index=False)
    runs = sorted(ensemble.glob("run*/run.json"))
    return model_card("stepIII-MIX", "III", "MIX", CONFIG, runs, ensemble / "trust.json", table, calibration,
                      "" if heldout else "no held-out folds: heldout.enabled is false")


def _export(ensemble: Path, out: Path, structures: list, members: int = 2, half: bool = True,
            precision_structures: tuple = ()) -> dict:
    return export_model(sorted(ensemble.glob("run*/best.ckpt")),
                        [ensemble / "domain.parquet", ensemble / "trust.json"], out, structures,
                        _card(ensemble, out.parent), members=members, half_precision=half,
                        precision_structures=precision_structures)


def test_check_structures_are_the_first_materials_by_id(structures: list) -> None:
    assert [s.properties["id"] for s in structures] == ["mp-1000", "mp-10010"]


def test_export_records_what_it_predicts_and_reproduces_it(ensemble: Path, structures: list, tmp_path: Path) -> None:
    card = _export(ensemble, tmp_path / "model", structures)
    model = tmp_path / "model"
    assert card["members"] == ["run1", "run2"] and read_card(model) == card
    assert load_ensemble(model).runs == ["run1", "run2"]
    assert load_ensemble(model).trust.calibrated
    weights = card["weights"]
    dtype = torch.load(model / "run1" / "best.ckpt", weights_only=True)["state_dict"]["model.head.0.weight"].dtype
    assert dtype == (torch.float16 if weights["precision"] == "float16" else torch.float32)
    if weights["precision"] == "float16":
        assert weights["largest_relative_change_from_float32"] <= shipped.HALF_PRECISION_TOLERANCE
    recorded = pd.read_csv(model / "check.csv")
    assert recorded["input"].tolist() == ["check/mp-1000.json", "check/mp-10010.json"]
    assert (recorded["pred_mean_wmk"] > 0).all()
    assert len(check_predictions(model)) == 2


def test_half_precision_is_judged_on_every_structure_given(ensemble: Path, structures: list, tmp_path: Path) -> None:
    card = _export(ensemble, tmp_path / "model", structures[:1], precision_structures=tuple(structures))
    assert card["weights"]["structures_compared"] == 2  # the check structure is judged once, not twice
    assert len(pd.read_csv(tmp_path / "model" / "check.csv")) == 1


def test_half_precision_is_refused_when_it_moves_predictions(
    ensemble: Path, structures: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "HALF_PRECISION_TOLERANCE", 0.0)
    card = _export(ensemble, tmp_path / "model", structures)
    assert card["weights"]["precision"] == "float32"
    assert card["weights"]["largest_relative_change_from_float32"] > 0
    state = torch.load(tmp_path / "model" / "run1" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(v.dtype != torch.float16 for v in state.values())


def test_float16_weights_halve_the_size(ensemble: Path, structures: list, tmp_path: Path) -> None:
    full = _export(ensemble, tmp_path / "full", structures, half=False)["size_bytes"]
    half_card = _export(ensemble, tmp_path / "half", structures)
    if half_card["weights"]["precision"] == "float16":
        assert (tmp_path / "half" / "run1" / "best.ckpt").stat().st_size < 0.75 * (
            tmp_path / "full" / "run1" / "best.ckpt").stat().st_size
    assert full > 0


def test_check_fails_when_a_weight_changes(ensemble: Path, structures: list, tmp_path: Path) -> None:
    _export(ensemble, tmp_path / "model", structures, half=False)
    path = tmp_path / "model" / "run1" / "best.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["model.head.0.bias"] += 0.5
    torch.save(checkpoint, path)
    with pytest.raises(AssertionError, match="check/mp-10"):
        check_predictions(tmp_path / "model")


def test_collapsed_runs_are_not_shipped(ensemble: Path, structures: list, tmp_path: Path) -> None:
    copy = tmp_path / "ensemble"
    shutil.copytree(ensemble, copy)
    info = json.loads((copy / "run1" / "run.json").read_text())
    (copy / "run1" / "run.json").write_text(json.dumps({**info, "status": "collapsed"}))
    assert _export(copy, tmp_path / "model", structures)["members"] == ["run2", "run3"]
    with pytest.raises(ModelError, match="2 usable runs of 3, fewer than the 3"):
        _export(copy, tmp_path / "model3", structures, members=3)


def test_export_needs_the_trust_files(ensemble: Path, structures: list, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="trust.json"):
        export_model(sorted(ensemble.glob("run*/best.ckpt")), [ensemble / "domain.parquet"], tmp_path / "m",
                     structures, {}, members=1)


def test_card_says_what_the_model_is_and_how_good(ensemble: Path, tmp_path: Path) -> None:
    card = _card(ensemble, tmp_path)
    assert card["heldout"]["rows"][0]["mape"] == 0.31
    assert card["configuration"] == CONFIG and "package_path" not in card["made_by"]
    text = describe_card({**card, "members": ["run1"], "size_bytes": 10**6,
                          "weights": {"precision": "float16", "largest_relative_change_from_float32": 2e-4}})
    assert "step III ensemble trained on MIX" in text and "stage 1: AFLOW AGL" in text
    assert "on MIX: ensemble MAPE 0.310" in text and "per run MAPE 0.350 (0.050) over 25 runs" in text
    assert "spread × 1.50" in text and "±1σ 0.66" in text
    assert "target log10_kappa, loss l1_log" in text


def test_card_without_heldout_folds_says_why(ensemble: Path, tmp_path: Path) -> None:
    card = _card(ensemble, tmp_path, heldout=False)
    text = describe_card({**card, "members": ["run1"], "size_bytes": 10**6,
                          "weights": {"precision": "float32", "largest_relative_change_from_float32": 0.0}})
    assert "held-out error: none (no held-out folds: heldout.enabled is false)" in text


def test_the_package_ships_a_model_that_reproduces_its_check_predictions() -> None:
    card = read_card(DEFAULT_MODEL_DIR)
    assert len(card["members"]) >= 2 and card["heldout"]["rows"], "the shipped model has held-out numbers"
    assert card["size_bytes"] < 12e6
    compared = check_predictions(DEFAULT_MODEL_DIR)
    assert len(compared) >= 2


@pytest.mark.slow
def test_a_wheel_install_ships_the_model_and_reproduces_it(repo_root: Path, tmp_path: Path) -> None:
    """Build the wheel from the checkout's files (not editable), install it apart, predict with its model."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo_root, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    source = tmp_path / "source"
    for name in files:
        if (repo_root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("kappaflow-*.whl"))
    assert "kappaflow/models/default/card.json" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    script = (
        "import sys\n"
        "from kappaflow.protocol import DEFAULT_MODEL_DIR\n"
        "from kappaflow.shipped import check_predictions\n"
        f"assert DEFAULT_MODEL_DIR.is_relative_to({str(site)!r}), DEFAULT_MODEL_DIR\n"
        "check_predictions(DEFAULT_MODEL_DIR)\n"
        "from kappaflow.cli import main\n"
        "sys.exit(main(['predict', str(DEFAULT_MODEL_DIR / 'check')]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(io.StringIO(result.stdout))
    recorded = pd.read_csv(site / "kappaflow" / "models" / "default" / "check.csv")
    assert table["pred_mean_wmk"].to_numpy() == pytest.approx(recorded["pred_mean_wmk"].to_numpy(), rel=1e-4)
