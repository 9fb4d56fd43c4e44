"""Validation: every bad row lands in quarantine with its reason, and no row is lost."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from kappaflow import graphs, validation
from kappaflow.validation import (
    InvalidRow,
    Limits,
    check_kappa,
    check_structure,
    gather_rejected,
    validate_file,
)
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

GOOD = ["Pt1Sn1Ti1_ICSD_105799", "Li1Sb1Zn1_ICSD_42064", "Ag1Al1S2_ICSD_25356"]


def _write_cif(structure: Structure, path: Path) -> None:
    path.write_text(str(CifWriter(structure)))


@pytest.fixture
def aflow_labels(tmp_path: Path, mirror_dir: Path) -> Path:
    """An AFLOW-like label table with three good rows and one row per kind of defect."""
    cif_dir = tmp_path / "aflow_agl" / "cif"
    cif_dir.mkdir(parents=True)
    for entry in GOOD:
        shutil.copy(mirror_dir / "aflow_agl" / "cif" / f"{entry}.cif", cif_dir / f"{entry}.cif")
    (cif_dir / "empty.cif").write_text("")
    (cif_dir / "garbage.cif").write_text("data_x\nthis is not a CIF at all\n_cell_length_a oops\n")
    _write_cif(Structure(Lattice.cubic(3.3), ["Po"], [[0, 0, 0]]), cif_dir / "polonium.cif")
    _write_cif(
        Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]]), cif_dir / "overlap.cif"
    )
    _write_cif(
        Structure(Lattice.cubic(12.0), ["Na", "Cl", "Cs"], [[0, 0, 0], [0.2, 0, 0], [0.5, 0.5, 0.5]]),
        cif_dir / "isolated.cif",
    )
    for entry in ("nan_kappa", "zero_kappa", "negative_kappa"):
        shutil.copy(cif_dir / f"{GOOD[0]}.cif", cif_dir / f"{entry}.cif")
    rows = [
        (GOOD[0], 6.2),
        (GOOD[1], 2.5),
        (GOOD[2], 5.0),
        ("empty", 1.0),
        ("garbage", 1.0),
        ("missing", 1.0),
        ("polonium", 1.0),
        ("overlap", 1.0),
        ("isolated", 1.0),
        ("nan_kappa", float("nan")),
        ("zero_kappa", 0.0),
        ("negative_kappa", -3.0),
        (GOOD[1], 2.5),  # duplicate id
    ]
    labels = tmp_path / "aflow_agl" / "labels.csv"
    pd.DataFrame(rows, columns=["entry", "agl_thermal_conductivity_300K"]).assign(
        compound="x", icsd_id=1
    ).to_csv(labels, index=False)
    return labels


EXPECTED_AFLOW = {
    "empty": "empty CIF file",
    "garbage": "unreadable CIF",
    "missing": "CIF file not found",
    "polonium": "element(s) Po outside MEGNet's 89 element types",
    "overlap": "overlapping atoms",
    "isolated": "(Cs) has no neighbour within 4.0 Å",
    "nan_kappa": "κ is missing (NaN)",
    "zero_kappa": "κ = 0 W/mK is not finite and > 0",
    "negative_kappa": "κ = -3 W/mK is not finite and > 0",
}


@pytest.mark.parametrize("workers", [1, 2])
def test_aflow_bad_rows_are_quarantined(aflow_labels: Path, tmp_path: Path, workers: int) -> None:
    out = tmp_path / "out"
    result = validate_file(
        "aflow", aflow_labels, out / "aflow.parquet", out / "rejected.csv", Limits(), workers=workers
    )
    kept = pq.read_table(out / "aflow.parquet")
    rejected = pd.read_csv(out / "rejected.csv")
    assert kept.schema.equals(graphs.STRUCTURE_SCHEMA)
    assert kept.column("id").to_pylist() == GOOD
    assert kept.column("formula").to_pylist() == ["TiSnPt", "LiZnSb", "AlAgS2"]
    assert kept.column("dataset").to_pylist() == ["aflow"] * 3
    assert kept.column("target").to_pylist() == [6.2, 2.5, 5.0]
    assert len(kept) + len(rejected) == result.rows_in == 13
    assert list(rejected.columns) == ["dataset", "id", "reason"]
    assert set(rejected["dataset"]) == {"aflow"}
    reasons = dict(zip(rejected["id"].iloc[:-1], rejected["reason"].iloc[:-1]))
    duplicate = rejected.iloc[-1]
    assert duplicate["id"] == GOOD[1] and "duplicate id" in duplicate["reason"]
    assert set(reasons) == set(EXPECTED_AFLOW)
    for entry, expected in EXPECTED_AFLOW.items():
        assert expected in reasons[entry], entry
        if entry != "missing":
            assert f"{entry}.cif" in reasons[entry], "the reason names the file"


def _mp_table(path: Path, mirror_dir: Path) -> None:
    structure = (mirror_dir / "mp" / "structures" / "mp-30847.json").read_text()
    frame = pd.DataFrame(
        {
            "mp_id": ["mp-30847", "mp-0", "mp-1", "mp-2", "mp-30847"],
            "formula": ["TiSnPt", "X", "Y", "TiSnPt", "TiSnPt"],
            "ltc_wmk": [11.18, 1.0, 1.0, math.inf, 11.18],
            "structure": [structure, None, "{not json", structure, structure],
        }
    )
    frame.to_parquet(path, index=False)


def test_mp_bad_rows_are_quarantined(tmp_path: Path, mirror_dir: Path) -> None:
    source = tmp_path / "dataset2.parquet"
    _mp_table(source, mirror_dir)
    result = validate_file("dataset2", source, tmp_path / "d2.parquet", tmp_path / "d2.csv", Limits())
    assert [row["id"] for row in result.kept] == ["mp-30847"]
    reasons = {row["id"]: row["reason"] for row in result.rejected if row["id"] != "mp-30847"}
    assert "structure not found in Materials Project" in reasons["mp-0"]
    assert "unreadable structure JSON" in reasons["mp-1"]
    assert "κ = inf W/mK" in reasons["mp-2"]
    assert all(f"{source} row" in reason for reason in reasons.values())
    assert any("duplicate id mp-30847" in row["reason"] for row in result.rejected)
    assert result.rows_in == 5 == len(result.kept) + len(result.rejected)


def test_duplicates_with_different_kappa_are_all_rejected(tmp_path: Path, mirror_dir: Path) -> None:
    """AFLOW: an id twice with κ 5.04 and 7.77 is a conflict (both rejected); an exact repeat keeps one."""
    cif_dir = tmp_path / "aflow_agl" / "cif"
    cif_dir.mkdir(parents=True)
    for entry in GOOD[:2]:
        shutil.copy(mirror_dir / "aflow_agl" / "cif" / f"{entry}.cif", cif_dir / f"{entry}.cif")
    rows = [(GOOD[0], 5.04), (GOOD[1], 2.5), (GOOD[0], 7.77), (GOOD[1], 2.5)]
    labels = tmp_path / "aflow_agl" / "labels.csv"
    pd.DataFrame(rows, columns=["entry", "agl_thermal_conductivity_300K"]).to_csv(labels, index=False)
    result = validate_file("aflow", labels, tmp_path / "a.parquet", tmp_path / "a.csv", Limits())
    assert [row["id"] for row in result.kept] == [GOOD[1]]
    conflicts = [row["reason"] for row in result.rejected if row["id"] == GOOD[0]]
    assert len(conflicts) == 2
    assert all(f"conflicting duplicates of id {GOOD[0]}: κ = 5.04 and 7.77 W/mK" in r for r in conflicts)
    assert [row["id"] for row in result.rejected].count(GOOD[1]) == 1
    assert result.rows_in == 4 == len(result.kept) + len(result.rejected)


def test_mp_duplicates_with_different_kappa_are_all_rejected(tmp_path: Path, mirror_dir: Path) -> None:
    structure = (mirror_dir / "mp" / "structures" / "mp-30847.json").read_text()
    source = tmp_path / "dataset1.parquet"
    pd.DataFrame(
        {
            "mp_id": ["mp-30847"] * 2,
            "formula": ["TiSnPt"] * 2,
            "ltc_wmk": [11.18, 12.0],
            "structure": [structure] * 2,
        }
    ).to_parquet(source, index=False)
    result = validate_file("dataset1", source, tmp_path / "d1.parquet", tmp_path / "d1.csv", Limits())
    assert not result.kept and len(result.rejected) == 2
    assert all("κ = 11.18 and 12.0 W/mK" in row["reason"] for row in result.rejected)


def test_manifest_without_cif_rejects_with_its_reason(tmp_path: Path, mirror_dir: Path) -> None:
    """The acquisition manifest's reason wins, even over a stale CIF left in cif/."""
    cif_dir = tmp_path / "aflow_agl" / "cif"
    cif_dir.mkdir(parents=True)
    for entry in GOOD[:2]:
        shutil.copy(mirror_dir / "aflow_agl" / "cif" / f"{entry}.cif", cif_dir / f"{entry}.cif")
    labels = tmp_path / "aflow_agl" / "labels.csv"
    pd.DataFrame({"entry": GOOD[:2], "agl_thermal_conductivity_300K": [6.2, 2.5]}).to_csv(labels, index=False)
    reason = "CIF missing from the mirror: /mirror/aflow_agl/cif/X.cif"
    manifest = tmp_path / "aflow_agl" / "cif_manifest.csv"
    pd.DataFrame(
        {
            "entry": GOOD[:2],
            "label_sha256": ["a", "b"],
            "cif": [f"cif/{GOOD[0]}.cif", ""],
            "sha256": ["c", ""],
            "missing": ["", reason],
        }
    ).to_csv(manifest, index=False)
    result = validate_file(
        "aflow", labels, tmp_path / "a.parquet", tmp_path / "a.csv", Limits(), manifest=manifest
    )
    assert [row["id"] for row in result.kept] == [GOOD[0]]
    assert result.rejected == [
        {"dataset": "aflow", "id": GOOD[1], "reason": f"{cif_dir / GOOD[1]}.cif: {reason}"}
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "is not a number"),
        (None, "is not a number"),
        (float("nan"), "NaN"),
        (-1, "not finite and > 0"),
    ],
)
def test_check_kappa_rejects(value: object, message: str) -> None:
    with pytest.raises(InvalidRow, match=message):
        check_kappa(value)


def test_check_kappa_accepts_numeric_strings() -> None:
    assert check_kappa("1.5") == 1.5


def test_degenerate_cell_is_rejected() -> None:
    flat = Structure(Lattice(np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]])), ["Na"], [[0, 0, 0]])
    with pytest.raises(InvalidRow, match="degenerate cell"):
        check_structure(flat, Limits())


def test_disordered_structure_is_rejected() -> None:
    alloy = Structure(Lattice.cubic(3.0), [{"Na": 0.5, "K": 0.5}], [[0, 0, 0]])
    with pytest.raises(InvalidRow, match="disordered"):
        check_structure(alloy, Limits())


def test_self_image_counts_as_neighbour() -> None:
    """A one-atom cell whose own periodic images lie within the cutoff has edges: it is kept."""
    check_structure(Structure(Lattice.cubic(3.0), ["Cu"], [[0, 0, 0]]), Limits())


def test_gather_rejected(tmp_path: Path) -> None:
    parts = []
    for name, rows in (("aflow", [("aflow", "a", "bad")]), ("dataset1", [])):
        part = tmp_path / f"{name}.csv"
        pd.DataFrame(rows, columns=["dataset", "id", "reason"]).to_csv(part, index=False)
        parts.append(part)
    assert gather_rejected(parts, tmp_path / "all.csv") == 1
    assert pd.read_csv(tmp_path / "all.csv").to_dict("records") == [
        {"dataset": "aflow", "id": "a", "reason": "bad"}
    ]


def test_structure_json_round_trip_keeps_species(mirror_dir: Path) -> None:
    """MP JSON with oxidation states or properties still gives plain atomic numbers."""
    data = json.loads((mirror_dir / "mp" / "structures" / "mp-30847.json").read_text())
    structure = Structure.from_dict(data)
    structure.add_oxidation_state_by_guess()
    check_structure(structure, Limits())
    assert graphs.structure_to_record(structure)["atomic_numbers"] == [site.specie.Z for site in structure]


def test_unexpected_error_rejects_only_that_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mirror_dir: Path
) -> None:
    def explode(structure: Structure, limits: Limits) -> None:
        if structure.composition.reduced_formula == "TiSnPt":
            raise RuntimeError("boom")

    monkeypatch.setattr(validation, "check_structure", explode)
    source = tmp_path / "dataset2.parquet"
    _mp_table(source, mirror_dir)
    result = validate_file("dataset2", source, tmp_path / "d2.parquet", tmp_path / "d2.csv", Limits())
    assert not result.kept
    assert "unexpected error while checking (RuntimeError: boom)" in result.rejected[0]["reason"]
