"""Checks every backbone must pass, called from each backbone's test module."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Structure

from kappaflow.backbones import Backbone

#: Largest change of a representation between batch sizes, relative to its largest entry.
BATCH_RTOL = 1e-5


def check_representation(backbone: Backbone, structures: list[Structure]) -> None:
    """``represent`` gives finite float64 rows of ``representation_dim``, whatever the batch size."""
    one = backbone.represent(structures, batch_size=1)
    eight = backbone.represent(structures, batch_size=8)
    assert one.shape == (len(structures), backbone.spec.representation_dim)
    assert one.dtype == np.float64
    assert np.isfinite(one).all()
    assert np.abs(one - eight).max() <= BATCH_RTOL * np.abs(one).max()
    assert backbone.represent([]).shape == (0, backbone.spec.representation_dim)
    assert (one.std(axis=0) > 0).any(), "every structure got the same representation"


def check_rejects_unsupported(backbone: Backbone, unsupported: Structure, supported: Structure) -> None:
    """``supports`` names an element outside the backbone's types, and evaluating it fails clearly."""
    assert backbone.supports(supported) is None
    reason = backbone.supports(unsupported)
    assert reason is not None and "Am" in reason and backbone.spec.name in reason
    with pytest.raises(ValueError, match="Am"):
        backbone.energies([supported, unsupported])


def calculator_energies(calculator: object, structures: list) -> np.ndarray:
    """Energies per atom (eV/atom) that an ASE calculator (the backbone package's own) gives."""
    from pymatgen.io.ase import AseAtomsAdaptor

    energies = []
    for structure in structures:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy() / len(atoms))
    return np.asarray(energies)
