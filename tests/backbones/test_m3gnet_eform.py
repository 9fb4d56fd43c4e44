"""m3gnet-2018-eform, patched, gives MP-level formation energies; stock matgl 4.1.2 does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _contract import check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Structure

from kappaflow.backbones.m3gnet import DestinationM3GNetGraphConv, M3GNetEform, TransposedThreeBody

#: Two models with 0.02-0.03 eV/atom test error on the same MP data agree to about that.
PATCHED_MAE_EV = 0.05
#: Stock matgl 4.1.2 is ≈0.35 eV/atom off.
STOCK_MAE_EV = 0.2


@pytest.fixture(scope="module")
def backbone(pretrained_root: Path) -> M3GNetEform:
    return M3GNetEform(pretrained_root)


@pytest.fixture(scope="module")
def rows(eform_reference: pd.DataFrame) -> pd.DataFrame:
    """Every 4th reference structure with at most 24 sites (101 structures)."""
    return eform_reference[eform_reference.n_sites <= 24].iloc[::4]


@pytest.fixture(scope="module")
def structures(rows: pd.DataFrame, load_structures) -> list[Structure]:
    return load_structures(rows.mp_id)


def _mae(backbone: M3GNetEform, structures: list[Structure], rows: pd.DataFrame) -> float:
    return float(np.abs(backbone.energies(structures) - rows.eform_ev_per_atom.to_numpy()).mean())


def test_every_block_is_patched_and_the_spec_matches_the_model(backbone: M3GNetEform) -> None:
    assert all(isinstance(layer.conv, DestinationM3GNetGraphConv) for layer in backbone.model.graph_layers)
    assert all(isinstance(block, TransposedThreeBody) for block in backbone.model.three_body_interactions)
    assert tuple(backbone.model.element_types) == backbone.spec.elements
    assert backbone.model.cutoff == backbone.spec.cutoff


def test_patched_model_agrees_with_the_megnet_reference(
    backbone: M3GNetEform, structures: list[Structure], rows: pd.DataFrame
) -> None:
    assert len(rows) >= 80
    assert _mae(backbone, structures, rows) <= PATCHED_MAE_EV


def test_stock_model_is_far_off(
    pretrained_root: Path, structures: list[Structure], rows: pd.DataFrame
) -> None:
    assert _mae(M3GNetEform(pretrained_root, patched=False), structures, rows) > STOCK_MAE_EV


def test_representation(backbone: M3GNetEform, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: M3GNetEform, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: M3GNetEform, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
