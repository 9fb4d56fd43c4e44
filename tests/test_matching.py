"""AFLOW ↔ Dataset1/Dataset2 structure matching on real mirror entries."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from kappaflow import graphs
from kappaflow.matching import MATCH_COLUMNS, match_files
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser

#: TiSnPt (half-Heusler, Dataset2) is in both; LiZnSb is in both but as different polymorphs
#: (AFLOW: hexagonal P6_3mc, Dataset2: cubic F-43m); AgBr and AlAgS2 appear on one side only.
AFLOW = {"Pt1Sn1Ti1_ICSD_105799": 6.19793, "Li1Sb1Zn1_ICSD_42064": 1.0, "Ag1Al1S2_ICSD_25356": 5.04353}
HQ = {"dataset2": {"mp-30847": 11.18, "mp-1100430": 2.0}, "dataset1": {"mp-23231": 0.53}}


def _table(path: Path, dataset: str, rows: dict[str, tuple[float, Structure]]) -> Path:
    records = [
        {"id": name, "dataset": dataset, "target": kappa, **graphs.structure_to_record(structure)}
        for name, (kappa, structure) in rows.items()
    ]
    graphs.write_structure_table(records, path)
    return path


def test_match_files(mirror_dir: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aflow = {
            entry: (
                kappa,
                CifParser(mirror_dir / "aflow_agl" / "cif" / f"{entry}.cif").parse_structures(
                    primitive=False
                )[0],
            )
            for entry, kappa in AFLOW.items()
        }
    hq_paths = []
    for dataset, labels in HQ.items():
        rows = {
            mp_id: (kappa, Structure.from_file(mirror_dir / "mp" / "structures" / f"{mp_id}.json"))
            for mp_id, kappa in labels.items()
        }
        hq_paths.append(_table(tmp_path / f"{dataset}.parquet", dataset, rows))
    out = tmp_path / "matching" / "aflow_hq_matches.csv"
    table = match_files(_table(tmp_path / "aflow.parquet", "aflow", aflow), hq_paths, out)
    expected = [["Pt1Sn1Ti1_ICSD_105799", "dataset2", "mp-30847", "TiSnPt", 6.19793, 11.18]]
    assert table.values.tolist() == expected
    written = pd.read_csv(out)
    assert list(written.columns) == MATCH_COLUMNS
    assert written.values.tolist() == expected
