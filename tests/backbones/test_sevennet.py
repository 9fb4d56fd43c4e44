"""sevennet-0 equals the sevenn package's own ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
from _contract import calculator_energies, check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Element, Structure

from kappaflow.backbones import sevennet
from kappaflow.backbones.sevennet import SevenNet0

TOLERANCE_EV = 1e-5


@pytest.fixture(scope="module")
def backbone() -> SevenNet0:
    return SevenNet0()


def test_spec_and_keys_match_the_package(backbone: SevenNet0) -> None:
    from sevenn import _keys

    assert (sevennet.NODE_FEATURE, sevennet.BATCH) == (_keys.NODE_FEATURE, _keys.BATCH)
    assert sevennet.TOTAL_ENERGY == _keys.PRED_TOTAL_ENERGY
    assert backbone.cutoff == backbone.spec.cutoff
    assert set(backbone.model.type_map) == {Element(symbol).Z for symbol in backbone.spec.elements}
    assert "force_output" not in backbone.model._modules


def test_energies_equal_the_package_calculator(
    backbone: SevenNet0, small_structures: list[Structure]
) -> None:
    from sevenn.calculator import SevenNetCalculator

    expected = calculator_energies(SevenNetCalculator("7net-0", device="cpu"), small_structures)
    assert np.abs(backbone.energies(small_structures) - expected).max() < TOLERANCE_EV


def test_representation(backbone: SevenNet0, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: SevenNet0, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: SevenNet0, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
