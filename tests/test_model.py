"""KappaNet: the backbone's 16 features, the head, freezing, and agreement with matgl's forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kappaflow.backbone import load_pretrained_megnet
from kappaflow.graphs import featurize_record, graph_set_from_table, structure_to_record
from kappaflow.model import build_kappanet, kappanet_from_config
from pymatgen.core import Lattice, Structure


@pytest.fixture(scope="module")
def batch():
    import pyarrow as pa
    from kappaflow.graphs import GRAPH_SCHEMA

    structures = [
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.hexagonal(3.2, 5.2), ["Ga", "Ga", "N", "N"],
                  [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375], [2 / 3, 1 / 3, 0.875]]),
    ]
    records = [
        featurize_record({"id": f"s{i}", "dataset": "user", "target": 1.0, **structure_to_record(s)}, 4.0)
        for i, s in enumerate(structures)
    ]
    table = pa.Table.from_pylist(records, schema=GRAPH_SCHEMA).replace_schema_metadata({"kappaflow.cutoff": "4.0"})
    return graph_set_from_table(table).batch(np.arange(3))


def test_features_match_matgl_forward(pretrained_dir, batch):
    """Features + the dropped 16 → 1 layer reproduce the intact pretrained MEGNet's output."""
    intact = load_pretrained_megnet(pretrained_dir)
    net = build_kappanet(pretrained_dir).eval()
    last_act, last_linear = intact.output_proj.layers[-2], intact.output_proj.layers[-1]
    with torch.no_grad():
        expected = intact(g=batch, state_attr=batch.state_attr)
        features = net.features(batch)
        got = last_linear(last_act(features)).reshape(-1)
    assert features.shape == (3, 16)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_head_shape_and_config_round_trip(pretrained_dir, batch):
    net = build_kappanet(pretrained_dir, head_hidden=[450, 350, 350])
    widths = [layer.out_features for layer in net.head if isinstance(layer, torch.nn.Linear)]
    assert widths == [450, 350, 350, 1]
    assert net(batch).shape == (3,)
    clone = kappanet_from_config(net.config())
    clone.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(batch), net.eval()(batch))


def test_single_graph_batch(pretrained_dir, batch):
    from kappaflow.graphs import GraphBatch

    net = build_kappanet(pretrained_dir).eval()
    one = GraphBatch(batch.node_type[:2], batch.pos[:2], batch.edge_index[:, batch.batch[batch.edge_index[0]] == 0],
                     batch.pbc_offshift[batch.batch[batch.edge_index[0]] == 0], batch.batch[:2],
                     batch.state_attr[:1], 1)
    with torch.no_grad():
        assert net(one).shape == (1,)
        torch.testing.assert_close(net(one), net(batch)[:1], rtol=1e-5, atol=1e-6)


def test_freeze_backbone(pretrained_dir):
    net = build_kappanet(pretrained_dir, freeze_backbone=True)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    assert kappanet_from_config(net.config()).freeze_backbone
