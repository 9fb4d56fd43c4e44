"""m3gnet-matpes-2025, patched, gives PBE-level energies and agrees with the patched TensorNet.

No runnable original implementation exists here (its matgl needed DGL), so the check is physical:
approximate PBE energies of five simple solids, and agreement with an independently trained model
(TensorNet-MatPES, itself checked against the matgl that saved it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _contract import check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Structure

from kappaflow.backbones.m3gnet import DestinationM3GNetGraphConv, M3GNetMatPES
from kappaflow.backbones.tensornet import TensorNetMatPES

#: Approximate PBE total energies (eV/atom) at the MP geometries: Materials Project GGA energies
#: (uncorrected), rounded, as collected in the project's MatPES notes (matpes_check.py, PBE_REF).
#: SevenNet-0, trained on MPtrj (MP's PBE energies), gives -3.72, -5.97, -3.38, -6.43, -4.20.
PBE_EV_PER_ATOM = {"mp-134": -3.75, "mp-1265": -5.96, "mp-22862": -3.42, "mp-2605": -6.45, "mp-463": -4.20}
PBE_TOLERANCE_EV = 0.15
TENSORNET_MAE_EV = 0.1


@pytest.fixture(scope="module")
def backbone(pretrained_root: Path) -> M3GNetMatPES:
    return M3GNetMatPES(pretrained_root)


@pytest.fixture(scope="module")
def solids(load_structures) -> list[Structure]:
    """Al, MgO, NaCl, CaO, KF."""
    return load_structures(list(PBE_EV_PER_ATOM))


@pytest.fixture(scope="module")
def pbe() -> np.ndarray:
    return np.array(list(PBE_EV_PER_ATOM.values()))


def test_every_block_is_patched_and_the_spec_matches_the_model(backbone: M3GNetMatPES) -> None:
    model = backbone.potential.model
    assert all(isinstance(layer.conv, DestinationM3GNetGraphConv) for layer in model.graph_layers)
    assert tuple(model.element_types) == backbone.spec.elements
    assert model.cutoff == backbone.spec.cutoff


def test_energies_are_close_to_pbe(backbone: M3GNetMatPES, solids: list[Structure], pbe: np.ndarray) -> None:
    errors = np.abs(backbone.energies(solids) - pbe)
    assert errors.max() <= PBE_TOLERANCE_EV, dict(zip(PBE_EV_PER_ATOM, errors.round(3).tolist(), strict=True))


def test_stock_model_misses_pbe_on_compounds(
    pretrained_root: Path, solids: list[Structure], pbe: np.ndarray
) -> None:
    errors = np.abs(M3GNetMatPES(pretrained_root, patched=False).energies(solids) - pbe)
    assert errors.max() > 1.0


def test_agrees_with_the_patched_tensornet(
    backbone: M3GNetMatPES, pretrained_root: Path, solids: list[Structure]
) -> None:
    tensornet = TensorNetMatPES(pretrained_root).energies(solids)
    assert np.abs(backbone.energies(solids) - tensornet).mean() <= TENSORNET_MAE_EV


def test_representation(backbone: M3GNetMatPES, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: M3GNetMatPES, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: M3GNetMatPES, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
