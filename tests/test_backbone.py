"""The pretrained backbone reproduces the original MEGNet formation energies (437 reference materials)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matgl.ext.pymatgen import Structure2Graph
from pymatgen.core import Structure

from kappaflow import graphs
from kappaflow.backbone import (
    EFORM_MEAN,
    EFORM_STD,
    DestinationMEGNetGraphConv,
    build_megnet,
    load_pretrained_megnet,
    read_init_args,
)

TOLERANCE_EV = 1e-3


@pytest.fixture(scope="module")
def reference(mirror_dir: Path) -> pd.DataFrame:
    return pd.read_csv(mirror_dir / "reference" / "megnet_eform_reference.csv")


@pytest.fixture(scope="module")
def structures(mirror_dir: Path, reference: pd.DataFrame) -> list[Structure]:
    folder = mirror_dir / "mp" / "structures"
    return [Structure.from_dict(json.loads((folder / f"{mp_id}.json").read_text())) for mp_id in reference.mp_id]


@pytest.fixture(scope="module")
def graph_set(structures: list[Structure], reference: pd.DataFrame, tmp_path_factory) -> graphs.GraphSet:
    records = [
        graphs.featurize_record({"id": mp_id, "dataset": "reference", "target": 1.0, **graphs.structure_to_record(s)}, 4.0)
        for mp_id, s in zip(reference.mp_id, structures)
    ]
    path = tmp_path_factory.mktemp("graphs") / "reference.parquet"
    graphs.write_graph_table(records, path, cutoff=4.0)
    return graphs.read_graph_set(path)


def _eform(raw: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(raw, dtype=float).reshape(-1) * EFORM_STD + EFORM_MEAN


def _batched_eform(model: torch.nn.Module, graph_set: graphs.GraphSet, batch_size: int = 64) -> np.ndarray:
    outputs = []
    with torch.no_grad():
        for start in range(0, len(graph_set), batch_size):
            batch = graph_set.batch(np.arange(start, min(start + batch_size, len(graph_set))))
            outputs.append(model(g=batch, state_attr=batch.state_attr).reshape(-1))
    return _eform(torch.cat(outputs))


def test_loader_matches_every_key_and_patches_every_block(pretrained_dir: Path) -> None:
    model = load_pretrained_megnet(pretrained_dir)
    assert all(isinstance(block.conv, DestinationMEGNetGraphConv) for block in model.blocks)
    assert not model.training


def test_single_structures_reproduce_reference(
    pretrained_dir: Path, structures: list[Structure], reference: pd.DataFrame
) -> None:
    model = load_pretrained_megnet(pretrained_dir)
    converter = Structure2Graph(element_types=model.element_types, cutoff=model.cutoff)
    predicted = np.array([_eform(model.predict_structure(s, graph_converter=converter))[0] for s in structures])
    errors = np.abs(predicted - reference.eform_ev_per_atom.to_numpy())
    worst = int(errors.argmax())
    assert len(errors) == 437
    assert errors.max() < TOLERANCE_EV, f"{reference.mp_id[worst]}: off by {errors[worst]:.4f} eV/atom"


def test_batches_reproduce_reference(pretrained_dir: Path, graph_set: graphs.GraphSet, reference: pd.DataFrame) -> None:
    model = load_pretrained_megnet(pretrained_dir)
    errors = np.abs(_batched_eform(model, graph_set) - reference.eform_ev_per_atom.to_numpy())
    assert errors.max() < TOLERANCE_EV


def test_stock_source_convention_fails_the_reference(
    pretrained_dir: Path, graph_set: graphs.GraphSet, reference: pd.DataFrame
) -> None:
    model = load_pretrained_megnet(pretrained_dir, aggregation="source")
    errors = np.abs(_batched_eform(model, graph_set) - reference.eform_ev_per_atom.to_numpy())
    assert errors.max() > TOLERANCE_EV
    assert errors.mean() > 0.1, "the stock convention is known to be ≈0.3 eV/atom off on average"


def test_missing_files_and_bad_aggregation_are_clear(tmp_path: Path, pretrained_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="state.pt"):
        (tmp_path / "model.json").write_text((pretrained_dir / "model.json").read_text())
        load_pretrained_megnet(tmp_path)
    with pytest.raises(ValueError, match="aggregation"):
        build_megnet(read_init_args(pretrained_dir), aggregation="sideways")  # type: ignore[arg-type]
