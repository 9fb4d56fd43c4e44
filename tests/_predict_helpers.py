"""Structures that are valid, or bad for one reason each, for the predict and CLI tests."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Lattice, Structure


def write_bad_structures(folder: Path) -> dict[str, Path]:
    """``{case: path}``: an unreadable CIF, an element MEGNet lacks, a symbol that is no element, isolated atoms."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"unreadable": folder / "bad.cif", "element": folder / "rn.json", "isolated": folder / "far.json",
             "not_element": folder / "xx.cif"}
    paths["unreadable"].write_text("data_x\n_cell_length_a 3\nnot a CIF\n")
    paths["not_element"].write_text(
        "data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
        "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "Xx1 Xx 0 0 0\nNa1 Na 0.5 0.5 0.5\n"
    )
    Structure(Lattice.cubic(3.0), ["Rn", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(paths["element"]))
    Structure(Lattice.cubic(20.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(paths["isolated"]))
    return paths
