"""``kappaflow predict``: output table, stderr lines, exit statuses, no tracebacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _predict_helpers import write_bad_structures
from _tiny_ensemble import tiny_exported_model, tiny_models, tiny_trusted_models
from kappaflow import cli
from kappaflow.cli import EXIT_NO_PREDICTION, EXIT_OK, EXIT_USAGE, main
from pymatgen.core import Structure

CIF = "Ag1Al1S2_ICSD_25356.cif"


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A calibrated tiny ensemble with its domain (the workflow's trust files)."""
    calibration = {"scale": 1.5, "domain_threshold": 100.0, "domain_note": "test"}
    return str(tiny_trusted_models(tmp_path_factory.mktemp("tiny"), calibration) / "stepIII" / "MIX")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, pd.DataFrame | None, list[str]]:
    status = main(["predict", *args])
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out)) if out.strip() else None
    return status, table, [line for line in err.splitlines() if line]


def test_predicts_cif_poscar_json_folder_and_mp_id(capsys, model: str, tmp_path: Path, mirror_dir: Path) -> None:
    structure = Structure.from_file(mirror_dir / "mp" / "structures" / "mp-1000.json")
    structure.to(filename=str(tmp_path / "POSCAR"))
    folder = tmp_path / "folder"
    folder.mkdir()
    structure.to(filename=str(folder / "one.json"))
    structure.to(filename=str(folder / "two.cif"))
    cif = str(mirror_dir / "aflow_agl" / "cif" / CIF)
    status, table, err = run(capsys, "--model", model, "--mirror-dir", str(mirror_dir),
                             cif, str(tmp_path / "POSCAR"), str(folder), "mp-1000")
    assert status == EXIT_OK and err == []
    assert list(table.columns) == ["input", "formula", "pred_mean_wmk", "pred_std_wmk", "n_models", "unphysical",
                                   "unseen_elements", "kappa_low_wmk", "kappa_high_wmk", "calibrated",
                                   "calibration_note", "nearest_id", "nearest_formula", "nearest_kappa_wmk",
                                   "nearest_distance", "in_domain", "error"]
    assert table["calibrated"].all() and table["nearest_id"].notna().all()
    assert not table["unphysical"].any()
    assert list(table["input"]) == [cif, str(tmp_path / "POSCAR"), str(folder / "one.json"), str(folder / "two.cif"), "mp-1000"]
    assert table["error"].isna().all() and (table["n_models"] == 3).all()
    assert (table["pred_mean_wmk"] > 0).all() and (table["pred_std_wmk"] >= 0).all()
    same = table[table["formula"] == "BaTe"]["pred_mean_wmk"]
    assert len(same) == 4 and same.max() - same.min() < 1e-4 * same.mean()


def test_an_ensemble_without_trust_files_says_so(capsys, tmp_path_factory, mirror_dir: Path) -> None:
    plain = tiny_models(tmp_path_factory.mktemp("plain")) / "stepIII" / "MIX"
    status, table, err = run(capsys, "--model", str(plain), "--mirror-dir", str(mirror_dir), "mp-1000")
    assert status == EXIT_OK and len(err) == 1
    assert "no domain.parquet and trust.json" in err[0] and "in_domain is unknown" in err[0]
    assert table["in_domain"].isna().all() and not table["calibrated"].any()


@pytest.mark.parametrize("case, reason", [
    ("unreadable", "unreadable CIF"),
    ("element", "element(s) Rn outside MEGNet"),
    ("not_element", "unknown element(s) Xx (not chemical elements)"),
    ("isolated", "isolated atom"),
    ("unknown_id", "unknown Materials Project id"),
])
def test_each_bad_input_alone_fails_with_one_line(capsys, model: str, tmp_path: Path, mirror_dir: Path, case: str, reason: str) -> None:
    paths = write_bad_structures(tmp_path)
    arg = "mp-99999999" if case == "unknown_id" else str(paths[case])
    status, table, err = run(capsys, "--model", model, "--mirror-dir", str(mirror_dir), arg)
    assert status == EXIT_NO_PREDICTION
    assert err[0].startswith(f"kappaflow predict: {arg}: ") and reason in err[0]
    assert reason in table.loc[0, "error"] and table.loc[0, "n_models"] == 0


def test_mixed_inputs_exit_zero_and_write_parquet(capsys, model: str, tmp_path: Path, mirror_dir: Path) -> None:
    paths = write_bad_structures(tmp_path / "bad")
    out = tmp_path / "out" / "pred.parquet"
    status, table, err = run(capsys, "--model", model, "--mirror-dir", str(mirror_dir), "--out", str(out),
                             "--batch-size", "1", "mp-1000", *map(str, paths.values()), "no/such/file.cif")
    assert status == EXIT_OK and table is None
    written = pd.read_parquet(out)
    assert len(written) == 6 and written["error"].notna().sum() == 5
    assert [line.split(": ")[1] for line in err[:5]] == [*map(str, paths.values()), "no/such/file.cif"]
    assert err[-1] == "kappaflow predict: 1 of 6 structures predicted"


def test_empty_checkpoint_is_a_usage_error(capsys, tmp_path: Path) -> None:
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "best.ckpt").write_bytes(b"")
    status, table, err = run(capsys, "--model", str(tmp_path), "mp-1000")
    assert status == EXIT_USAGE and table is None
    assert err == [f"kappaflow predict: {tmp_path / 'run1' / 'best.ckpt'}: not a readable kappaflow checkpoint (empty file)"]


def test_missing_model_folder_is_a_usage_error(capsys, tmp_path: Path) -> None:
    status, table, err = run(capsys, "--model", str(tmp_path / "nope"), "mp-1000")
    assert status == EXIT_USAGE and table is None
    assert len(err) == 1 and "model folder" in err[0] and "not found" in err[0]


def test_bad_out_suffix(capsys, model: str, tmp_path: Path) -> None:
    status, _, err = run(capsys, "--model", model, "--out", str(tmp_path / "x.xlsx"), "mp-1000")
    assert status == EXIT_USAGE and "--out" in err[0]


def test_console_command_never_prints_a_traceback(model: str, tmp_path: Path, mirror_dir: Path) -> None:
    paths = write_bad_structures(tmp_path)
    command = [sys.executable, "-c", "import sys; from kappaflow.cli import main; sys.exit(main())", "predict",
               "--model", model, "--mirror-dir", str(mirror_dir), *map(str, paths.values()), "mp-99999999"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_NO_PREDICTION
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == len(paths) + 2  # one per input, then the summary
    missing = subprocess.run([*command[:3], "predict", "--model", str(tmp_path / "none"), "mp-1000"],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == EXIT_USAGE and "Traceback" not in missing.stderr


@pytest.fixture(scope="module")
def exported(model: str, tmp_path_factory: pytest.TempPathFactory, mirror_dir: Path) -> Path:
    structures = [Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json") for mp_id in ("mp-1000", "mp-10044")]
    return tiny_exported_model(Path(model), tmp_path_factory.mktemp("exported") / "model", structures)


def test_predict_uses_the_shipped_model_by_default(
    capsys, exported: Path, monkeypatch: pytest.MonkeyPatch, mirror_dir: Path
) -> None:
    monkeypatch.setattr(cli, "DEFAULT_MODEL_DIR", exported)
    status, table, _ = run(capsys, str(exported / "check"))
    recorded = pd.read_csv(exported / "check.csv")
    assert status == EXIT_OK and table["n_models"].tolist() == [2, 2]
    assert table["pred_mean_wmk"].to_numpy() == pytest.approx(recorded["pred_mean_wmk"].to_numpy(), rel=1e-4)


def test_models_prints_the_card(capsys, exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "DEFAULT_MODEL_DIR", exported)
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("stepIII-MIX: step III ensemble trained on MIX (2 members: run1, run2)")
    assert "held-out error: none (no held-out folds (test ensemble))" in out
    assert main(["models", "--model", str(exported), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["members"] == ["run1", "run2"]


def test_without_a_shipped_model_both_commands_say_what_to_do(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror_dir: Path
) -> None:
    monkeypatch.setattr(cli, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    assert main(["models"]) == EXIT_USAGE
    assert "this installation ships no model: pass --model" in capsys.readouterr().err
    status, _, err = run(capsys, str(mirror_dir / "mp" / "structures" / "mp-1000.json"))
    assert status == EXIT_USAGE and "ships no model" in err[-1]
