"""megnet-2018-eform reproduces the original implementation's formation energies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _contract import check_fine_tuning, check_rejects_unsupported, check_representation
from pymatgen.core import Structure

from kappaflow import protocol
from kappaflow.backbone import DestinationMEGNetGraphConv, read_init_args
from kappaflow.backbones.megnet import MEGNetEform

#: The tolerance of tests/test_backbone.py (eV/atom).
TOLERANCE_EV = 1e-3


@pytest.fixture(scope="module")
def backbone(pretrained_root: Path) -> MEGNetEform:
    return MEGNetEform(pretrained_root)


def test_loads_the_destination_convention_and_the_spec_matches_the_model(backbone: MEGNetEform) -> None:
    assert all(isinstance(block.conv, DestinationMEGNetGraphConv) for block in backbone.model.blocks)
    assert tuple(backbone.model.element_types) == backbone.spec.elements
    assert backbone.model.cutoff == backbone.spec.cutoff


def test_the_workflow_graphs_have_the_fine_tuned_backbones_cutoff(backbone: MEGNetEform) -> None:
    """Validation, featurization and the scan build graphs with protocol.FINE_TUNED_CUTOFF (no config knob)."""
    assert protocol.FINE_TUNED_BACKBONE == backbone.spec.name
    assert protocol.FINE_TUNED_CUTOFF == backbone.spec.cutoff == read_init_args(backbone.model_dir)["cutoff"]


def test_energies_reproduce_the_reference(
    backbone: MEGNetEform, eform_reference: pd.DataFrame, load_structures
) -> None:
    rows = eform_reference.iloc[::10]  # 44 structures of 2-180 sites
    errors = np.abs(backbone.energies(load_structures(rows.mp_id)) - rows.eform_ev_per_atom.to_numpy())
    worst = int(errors.argmax())
    assert len(rows) >= 40
    assert errors.max() < TOLERANCE_EV, f"{rows.mp_id.iloc[worst]}: off by {errors[worst]:.4f} eV/atom"


def test_representation(backbone: MEGNetEform, small_structures: list[Structure]) -> None:
    check_representation(backbone, small_structures)


def test_fine_tuning(backbone: MEGNetEform, small_structures: list[Structure]) -> None:
    check_fine_tuning(backbone, small_structures[:3])


def test_unsupported_element(backbone: MEGNetEform, americium_oxide: Structure, small_structures) -> None:
    check_rejects_unsupported(backbone, americium_oxide, small_structures[0])
