"""Structures that are valid, or bad for one reason each, for the predict and CLI tests."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Lattice, Structure


def write_bad_structures(folder: Path) -> dict[str, Path]:
    """``{case: path}``: an unreadable CIF, an unknown element, isolated atoms."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"unreadable": folder / "bad.cif", "element": folder / "rn.json", "isolated": folder / "far.json"}
    paths["unreadable"].write_text("data_x\n_cell_length_a 3\nnot a CIF\n")
    Structure(Lattice.cubic(3.0), ["Rn", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(paths["element"]))
    Structure(Lattice.cubic(20.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(paths["isolated"]))
    return paths
