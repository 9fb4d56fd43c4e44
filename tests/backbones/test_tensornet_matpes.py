"""tensornet-matpes-2025, patched, equals matgl 2.0.0 (which saved the weights); stock 4.1.2 does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _contract import check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Structure

from kappaflow.backbones.tensornet import DestinationTensorEmbedding, TensorNetMatPES

#: matgl 2.0.0 energies, 23 structures: tests/data/backbones/tensornet_matpes_matgl200.csv (header: how).
REFERENCE_CSV = Path(__file__).resolve().parents[1] / "data" / "backbones" / "tensornet_matpes_matgl200.csv"
TOLERANCE_EV = 1e-4


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE_CSV, comment="#")


@pytest.fixture(scope="module")
def structures(reference: pd.DataFrame, load_structures) -> list[Structure]:
    return load_structures(reference.mp_id)


@pytest.fixture(scope="module")
def backbone(pretrained_root: Path) -> TensorNetMatPES:
    return TensorNetMatPES(pretrained_root)


def test_embedding_is_patched_and_the_spec_matches_the_model(backbone: TensorNetMatPES) -> None:
    model = backbone.potential.model
    assert isinstance(model.tensor_embedding, DestinationTensorEmbedding)
    assert tuple(model.element_types) == backbone.spec.elements
    assert model.cutoff == backbone.spec.cutoff


def test_energies_equal_matgl_200(
    backbone: TensorNetMatPES, structures: list[Structure], reference: pd.DataFrame
) -> None:
    errors = np.abs(backbone.energies(structures) - reference.energy_ev_per_atom.to_numpy())
    worst = int(errors.argmax())
    assert errors.max() < TOLERANCE_EV, f"{reference.mp_id[worst]}: off by {errors[worst]:.2e} eV/atom"


def test_stock_embedding_is_far_off_on_mgo(
    pretrained_root: Path, structures: list[Structure], reference: pd.DataFrame
) -> None:
    mgo = int(np.flatnonzero(reference.formula == "MgO")[0])
    stock = TensorNetMatPES(pretrained_root, patched=False).energies([structures[mgo]])[0]
    assert abs(stock - reference.energy_ev_per_atom[mgo]) > 0.5


def test_representation(backbone: TensorNetMatPES, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: TensorNetMatPES, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: TensorNetMatPES, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
