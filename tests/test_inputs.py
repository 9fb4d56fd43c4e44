"""Reading structures to predict: files, folders, Materials Project ids, and every bad-input reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from kappaflow.inputs import MPSource, is_structure_file, read_inputs
from pymatgen.core import Lattice, Structure

CIF = "Ag1Al1S2_ICSD_25356.cif"


@pytest.fixture()
def source(mirror_dir: Path) -> MPSource:
    return MPSource(mode="mirror", mirror_dir=mirror_dir)


def test_cif_poscar_json_folder_and_id(tmp_path: Path, mirror_dir: Path, source: MPSource) -> None:
    structure = Structure.from_file(mirror_dir / "mp" / "structures" / "mp-1000.json")
    folder = tmp_path / "in"
    folder.mkdir()
    structure.to(filename=str(folder / "POSCAR"))
    structure.to(filename=str(folder / "a.json"))
    structure.to(filename=str(folder / "x_POSCAR"), fmt="poscar")
    (folder / "notes.txt").write_text("not a structure")
    cif = str(mirror_dir / "aflow_agl" / "cif" / CIF)
    items = read_inputs([cif, str(folder), "mp-1000"], source)
    files = [str(folder / name) for name in ("POSCAR", "a.json", "notes.txt", "x_POSCAR")]
    assert [item.input for item in items] == [cif, *files, "mp-1000"], "every file of a folder has a row"
    notes = items.pop(3)
    assert notes.structure is None and notes.error.startswith("skipped: not a structure file")
    assert all(item.error is None for item in items)
    assert {item.structure.composition.reduced_formula for item in items[1:]} == {"BaTe"}


def test_bad_inputs_become_errors(tmp_path: Path, source: MPSource) -> None:
    (tmp_path / "bad.cif").write_text("garbage\n")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "POSCAR").write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(tmp_path / "bad.cif"), str(tmp_path / "bad.json"), str(tmp_path / "POSCAR"), str(empty),
            "mp-99999999", "nothing.cif"]
    items = read_inputs(args, source)
    reasons = [item.error for item in items]
    assert all(item.structure is None for item in items)
    assert "unreadable CIF" in reasons[0]
    assert "unreadable structure JSON" in reasons[1]
    assert reasons[2] == "empty file"
    assert "no structure files" in reasons[3]
    assert "unknown Materials Project id" in reasons[4]
    assert "no such file" in reasons[5]


def test_online_ids_without_api_key_fail_per_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MP_API_KEY", raising=False)
    items = read_inputs(["mp-149", "mp-1000"], MPSource(mode="online", endpoint="http://127.0.0.1:9"))
    assert all("MP_API_KEY" in item.error for item in items)


def test_structure_file_names(tmp_path: Path) -> None:
    for name in ("x.cif", "CONTCAR", "POSCAR_relaxed", "y.vasp", "z.json", "x_POSCAR", "relaxed.contcar"):
        (tmp_path / name).write_text("x")
        assert is_structure_file(tmp_path / name)
    (tmp_path / "readme.md").write_text("x")
    assert not is_structure_file(tmp_path / "readme.md")


def test_structure_from_poscar_round_trip(tmp_path: Path) -> None:
    structure = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    structure.to(filename=str(tmp_path / "CONTCAR"))
    (item,) = read_inputs([str(tmp_path / "CONTCAR")])
    assert item.error is None and item.structure.composition.reduced_formula == "MgO"
