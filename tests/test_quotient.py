"""Quotient graphs: equivalent atoms merged, weights, and the model's function (values and gradients) kept."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from kappaflow.graphs import (
    GRAPH_SCHEMA,
    GraphSet,
    featurize_record,
    graph_set_from_table,
    structure_to_record,
)
from kappaflow.model import build_kappanet
from kappaflow.quotient import _is_stable, quotient, stable_colors, symmetrized
from pymatgen.core import Lattice, Structure


def _graph_set(structures: list[Structure]) -> GraphSet:
    records = [
        featurize_record({"id": f"s{i}", "dataset": "user", "target": 1.0, **structure_to_record(s)}, 4.0)
        for i, s in enumerate(structures)
    ]
    table = pa.Table.from_pylist(records, schema=GRAPH_SCHEMA).replace_schema_metadata(
        {"kappaflow.cutoff": "4.0"}
    )
    return graph_set_from_table(table)


def _rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _distorted(seed: int) -> Structure:
    rng = np.random.default_rng(seed)
    return Structure(
        Lattice.from_parameters(4.1, 4.6, 5.2, 84, 97, 101), ["Ga", "N", "N"], rng.random((3, 3))
    )


@pytest.fixture(scope="module")
def mirror_graphs(mirror_dir) -> GraphSet:
    """Twelve AFLOW structures from the mirror, a rock-salt cell and a structure without symmetry."""
    warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
    entries = pd.read_csv(mirror_dir / "aflow_agl" / "labels.csv").entry.head(12)
    structures = [Structure.from_file(mirror_dir / "aflow_agl" / "cif" / f"{entry}.cif") for entry in entries]
    return _graph_set([*structures, _rock_salt(), _distorted(0)])


def test_rock_salt_collapses_to_one_node_per_element():
    graphs = _graph_set([_rock_salt()])
    reduced = quotient(graphs)
    assert len(graphs.node_type) == 8
    assert len(reduced.node_type) == 2
    assert reduced.node_weight.tolist() == [4.0, 4.0]
    _, dst, _ = graphs.global_edges()
    lengths = graphs.edge_lengths()
    for kept, original in ((0, 0), (1, int(np.flatnonzero(graphs.node_type != graphs.node_type[0])[0]))):
        into = reduced.edge_index[1] == kept
        # one row per neighbour shell (source element, length), counting the full graph's edges
        shells = {
            (int(graphs.node_type[graphs.edge_index[0][e]]), round(float(lengths[e]), 4))
            for e in np.flatnonzero(dst == original)
        }
        assert into.sum() == len(shells)
        assert reduced.edge_count[into].sum() == (dst == original).sum()
        np.testing.assert_allclose(
            np.sort(np.unique(reduced.edge_length[into])),
            np.sort(np.unique(np.round(lengths[dst == original], 4))),
            atol=1e-4,
        )
    assert reduced.edge_weight.sum() == len(dst)


def test_structure_without_symmetry_is_kept_whole():
    graphs = _graph_set([_distorted(1)])
    reduced = quotient(graphs)
    assert len(reduced.node_type) == 3
    assert (reduced.node_weight == 1).all()
    np.testing.assert_array_equal(reduced.edge_weight, reduced.edge_count)  # only parallel edges merged
    assert reduced.edge_count.sum() == graphs.edge_index.shape[1]


def test_weights_account_for_every_node_and_edge(mirror_graphs):
    reduced = quotient(mirror_graphs)
    assert len(reduced) == len(mirror_graphs)
    assert len(reduced.node_type) < len(mirror_graphs.node_type)
    full_nodes, full_edges = np.diff(mirror_graphs.node_ptr), np.diff(mirror_graphs.edge_ptr)
    node_graph = np.repeat(np.arange(len(reduced)), np.diff(reduced.node_ptr))
    edge_graph = np.repeat(np.arange(len(reduced)), np.diff(reduced.edge_ptr))
    np.testing.assert_array_equal(np.bincount(node_graph, reduced.node_weight), full_nodes)
    np.testing.assert_array_equal(np.bincount(edge_graph, reduced.edge_weight), full_edges)
    assert (reduced.edge_index >= 0).all()
    assert (
        reduced.edge_index < np.diff(reduced.node_ptr)[edge_graph]
    ).all()  # local indices stay in their graph
    assert quotient(reduced) is reduced


def test_length_snapping_is_per_graph_and_within_tolerance():
    base = _graph_set([_rock_salt(), _rock_salt()])
    lengths = base.edge_lengths().copy()
    first_graph = np.arange(len(lengths)) < base.edge_ptr[1]
    lengths[first_graph & (lengths > 3.9)] += 4e-6  # a few float32 ulps: merged with their equals
    snapped = symmetrized(GraphSet(**{**base.__dict__, "edge_length": lengths})).edge_length
    assert (
        np.unique(snapped[first_graph]).size == np.unique(np.round(base.edge_lengths()[first_graph], 4)).size
    )
    assert np.abs(snapped - lengths).max() <= 1e-5
    far = symmetrized(GraphSet(**{**base.__dict__, "edge_length": lengths + first_graph * 1e-3}))
    assert not np.isin(far.edge_length[first_graph], far.edge_length[~first_graph]).any()


def test_stability_check_rejects_a_wrong_colouring():
    # A path a → b → c: a and c are both Ga but only c has an incoming edge.
    node_graph, node_type = np.zeros(3, dtype=np.int64), np.array([30, 6, 30])
    src, dst, length_id = np.array([0, 1]), np.array([1, 2]), np.array([0, 0])
    colors = stable_colors(node_graph, node_type, src, dst, length_id)
    assert len(set(colors.tolist())) == 3
    assert _is_stable(colors, src, dst, length_id)
    assert not _is_stable(np.array([0, 1, 0]), src, dst, length_id)


def _outputs_and_grads(net, graphs: GraphSet) -> tuple[torch.Tensor, torch.Tensor]:
    net.zero_grad()
    out = net(graphs.batch(np.arange(len(graphs))))
    out.pow(2).sum().backward()
    return out.detach(), torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])


@pytest.mark.parametrize("pretrained", [True, False])
def test_model_gives_the_full_graphs_values_and_gradients(pretrained_dir, mirror_graphs, pretrained):
    """Quotient = symmetrized full graphs up to float32 summation order; symmetrizing moves outputs ≈1e-6."""
    from kappaflow.backbone import read_init_args

    torch.manual_seed(0)
    net = (
        build_kappanet(pretrained_dir)
        if pretrained
        else build_kappanet(None, init_args=read_init_args(pretrained_dir))
    ).train()
    full_out, full_grad = _outputs_and_grads(net, mirror_graphs)
    sym_out, sym_grad = _outputs_and_grads(net, symmetrized(mirror_graphs))
    quo_out, quo_grad = _outputs_and_grads(net, quotient(mirror_graphs))
    scale = float(sym_grad.abs().max())
    torch.testing.assert_close(quo_out, sym_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(quo_grad, sym_grad, rtol=1e-3, atol=1e-5 * scale)
    torch.testing.assert_close(sym_out, full_out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sym_grad, full_grad, rtol=1e-2, atol=1e-4 * scale)


def test_source_aggregation_refuses_quotient_graphs(pretrained_dir):
    from kappaflow.backbone import read_init_args
    from kappaflow.model import kappanet_from_config

    net = build_kappanet(None, init_args=read_init_args(pretrained_dir))
    stock = kappanet_from_config({**net.config(), "aggregation": "source"})
    graphs = quotient(_graph_set([_rock_salt()]))
    with pytest.raises(ValueError, match="destination aggregation"):
        stock(graphs.batch([0]))


def test_subset_and_concat_carry_the_quotient_arrays(mirror_graphs):
    reduced = quotient(mirror_graphs)
    part = reduced.subset([12, 0])
    assert part.node_weight.sum() == 8 + np.diff(mirror_graphs.node_ptr)[0]
    both = GraphSet.concat([part, reduced.subset([1])])
    batch = both.batch([0, 2])
    assert batch.node_weight is not None and batch.edge_length.shape == batch.edge_index.shape[1:]
    with pytest.raises(ValueError, match="full graphs with quotient graphs"):
        GraphSet.concat([part, mirror_graphs.subset([1])])
