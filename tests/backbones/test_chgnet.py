"""chgnet-0.3.0 equals the chgnet package's own ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
from _contract import calculator_energies, check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Structure

from kappaflow.backbones.chgnet import CHGNet030

TOLERANCE_EV = 1e-5


@pytest.fixture(scope="module")
def backbone() -> CHGNet030:
    return CHGNet030()


def test_spec_matches_the_model(backbone: CHGNet030) -> None:
    converter = backbone.model.graph_converter
    assert converter.atom_graph_cutoff == backbone.spec.cutoff
    assert backbone.model.atom_embedding.embedding.num_embeddings == len(backbone.spec.elements)


def test_energies_equal_the_package_calculator(
    backbone: CHGNet030, small_structures: list[Structure]
) -> None:
    from chgnet.model.dynamics import CHGNetCalculator

    expected = calculator_energies(CHGNetCalculator(model=backbone.model, use_device="cpu"), small_structures)
    assert np.abs(backbone.energies(small_structures) - expected).max() < TOLERANCE_EV


def test_representation(backbone: CHGNet030, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: CHGNet030, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: CHGNet030, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
