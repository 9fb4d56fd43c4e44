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


def _stock_features(model, batch):
    """``KappaNet.features`` through matgl's own modules (block and convolution ``forward``)."""
    net = model.backbone
    edge_index, node_batch, num_graphs = batch.edge_index, batch.batch, batch.num_graphs
    edge_batch = node_batch[edge_index[0]]
    bond_vec = batch.pos[edge_index[1]] + batch.pbc_offshift - batch.pos[edge_index[0]]
    edge_attr = net.bond_expansion(torch.linalg.vector_norm(bond_vec, dim=1))
    node_feat, edge_feat, state_feat = net.embedding(batch.node_type, edge_attr, batch.state_attr)
    edge_feat, node_feat, state_feat = net.edge_encoder(edge_feat), net.node_encoder(node_feat), net.state_encoder(state_feat)
    for block in net.blocks:
        edge_feat, node_feat, state_feat = block(
            edge_index, edge_feat, node_feat, state_feat, node_batch, edge_batch, batch.pos.size(0), num_graphs
        )
        state_feat = state_feat.reshape(num_graphs, -1)
    node_vec = net.node_s2s(node_feat, node_batch, dim_size=num_graphs).reshape(num_graphs, -1)
    edge_vec = net.edge_s2s(edge_feat, edge_batch, num_graphs=num_graphs).reshape(num_graphs, -1)
    return net.output_proj(torch.cat([node_vec, edge_vec, state_feat], dim=-1))


@pytest.mark.parametrize("n_graphs", [1, 3])
def test_fast_path_matches_stock_modules_with_gradients(pretrained_dir, batch, n_graphs):
    """The split edge update (features()) gives matgl's values and gradients, in training mode."""
    from kappaflow.graphs import GraphBatch

    if n_graphs == 1:
        nodes = batch.batch == 0
        edges = nodes[batch.edge_index[0]]
        batch = GraphBatch(batch.node_type[nodes], batch.pos[nodes], batch.edge_index[:, edges],
                           batch.pbc_offshift[edges], batch.batch[nodes], batch.state_attr[:1], 1)
    net = build_kappanet(pretrained_dir).train()
    grads = []
    for features in (net.features, lambda b: _stock_features(net, b)):
        net.zero_grad()
        out = features(batch)
        out.pow(2).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.backbone.parameters() if p.grad is not None]))
    (fast, fast_grads), (stock, stock_grads) = grads
    torch.testing.assert_close(fast, stock, rtol=1e-5, atol=1e-5)
    assert len(fast_grads) == len(stock_grads) > 0
    for a, b in zip(fast_grads, stock_grads):  # float32 sums in another order: compare at the tensor's scale
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


def test_bond_basis_shared_between_models(pretrained_dir, batch):
    """Models with the same Gaussian expansion can take one precomputed basis (the ensemble does)."""
    from kappaflow.backbone import read_init_args

    args = read_init_args(pretrained_dir)
    first, second = build_kappanet(pretrained_dir).eval(), build_kappanet(pretrained_dir).eval()
    with torch.no_grad():
        second.head[0].weight.mul_(2.0)  # different weights, same expansion
    assert first.shares_bond_basis(second)
    assert build_kappanet(None, init_args=args).shares_bond_basis(build_kappanet(None, init_args=args))
    assert not first.shares_bond_basis(build_kappanet(None, init_args={**args, "cutoff": 5.0}))
    with torch.no_grad():
        torch.testing.assert_close(second(batch, first.bond_basis(batch)), second(batch), rtol=0, atol=0)


def test_bond_basis_distinct_bonds(pretrained_dir, batch):
    """Each edge's representative bond has the same end types and length; symmetry leaves fewer bonds than edges."""
    basis = build_kappanet(pretrained_dir).bond_basis(batch)
    src, dst = batch.edge_index
    rep = basis.bond_edge[basis.bond_row]
    assert basis.equal_states
    assert len(basis.bond_edge) < src.numel() and len(basis.rows) < len(basis.bond_edge)
    assert torch.equal(batch.node_type[src[rep]], batch.node_type[src])
    assert torch.equal(batch.node_type[dst[rep]], batch.node_type[dst])
    assert torch.equal(basis.edge_row[rep], basis.edge_row)
    lengths = torch.linalg.vector_norm(batch.pos[dst] + batch.pbc_offshift - batch.pos[src], dim=1)
    torch.testing.assert_close(lengths[rep], lengths, rtol=0, atol=0)


def test_unequal_states_skip_the_bond_shortcut(pretrained_dir, batch):
    """With different graph states the first edge update depends on the graph too: no shortcut, same values as matgl's path."""
    from dataclasses import replace

    varied = replace(batch, state_attr=batch.state_attr.clone())
    varied.state_attr[1] = 0.5
    net = build_kappanet(pretrained_dir).eval()
    assert not net.bond_basis(varied).equal_states
    with torch.no_grad():
        torch.testing.assert_close(net.features(varied), _stock_features(net, varied), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(net.features(varied), net.features(batch))


def test_fast_path_follows_the_source_convention(pretrained_dir, batch):
    """With stock matgl's source aggregation the shortcuts still give matgl's own forward."""
    from kappaflow.backbone import read_init_args
    from kappaflow.model import KappaNet

    args = read_init_args(pretrained_dir)
    net = KappaNet(load_pretrained_megnet(pretrained_dir, "source"), args).eval()
    destination = KappaNet(load_pretrained_megnet(pretrained_dir, "destination"), args).eval()
    with torch.no_grad():
        torch.testing.assert_close(net.features(batch), _stock_features(net, batch), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(net.features(batch), destination.features(batch), atol=1e-4)
