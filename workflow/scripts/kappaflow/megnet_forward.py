"""matgl MEGNet's forward pass up to its output MLP, computed with shortcuts (the same function).

:func:`megnet_features` gives what matgl's modules give (``tests/test_model.py`` compares values
and gradients with them), faster at the batch sizes of this project:

- the edge encoder runs once per distinct edge length, the first block's edge update once per
  distinct bond (:class:`BondBasis`);
- the first layer of each edge MLP is split by input block (:func:`edge_update`: node and state
  parts multiplied per node and per graph, not per edge);
- node and state updates average with counts computed once per batch (:class:`Segments`) instead
  of matgl's TorchScript ``scatter_mean`` (≈0.1 ms of interpreter per call);
- Set2Set steps an LSTM cell (:func:`set2set`); SoftPlus2 subtracts ``log 2`` in place;
- batches of quotient graphs (:mod:`kappaflow.quotient`: one node per class of equivalent atoms)
  are weighted so that they give the full graphs' function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from matgl.layers import MLP
from matgl.layers._activations import SoftPlus2
from matgl.layers._graph_convolution import MEGNetBlock, MEGNetGraphConv
from matgl.models import MEGNet
from torch import Tensor, nn
from torch_geometric.utils import softmax as pyg_softmax

from kappaflow.backbone import DestinationMEGNetGraphConv
from kappaflow.graphs import ELEMENT_TYPES, GraphBatch

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class BondBasis:
    """The edge-length basis of a batch, one row per distinct length, and the batch's distinct bonds.

    Until the first graph convolution, an edge's features are a function of its length only, and
    symmetry makes many lengths equal (in the mirror's AFLOW batches of full graphs 1 in 5 is distinct,
    in the screening set 1 in 3). The basis expansion, the edge embedding and the edge encoder therefore run
    on the distinct lengths; ``edge_row`` gathers the result onto the edges.

    The first block's edge update is, in turn, a function of the edge's length, the element types of
    its two ends (node features before the first convolution depend on the element only) and the
    graph's state: with equal states, it runs once per distinct (source type, destination type,
    length) bond, on the representative edges ``bond_edge``; ``bond_row`` gathers it onto the edges.
    """

    rows: Tensor  #: ``(n_lengths, n_basis)``
    edge_row: Tensor  #: ``(num_edges,)``, each edge's row in ``rows``
    bond_edge: Tensor  #: ``(n_bonds,)``, one edge of each distinct bond
    bond_row: Tensor  #: ``(num_edges,)``, each edge's distinct bond
    equal_states: bool  #: whether every graph of the batch has the same state attributes


def _distinct_bonds(batch: GraphBatch, edge_row: Tensor, n_lengths: int) -> tuple[Tensor, Tensor]:
    """One representative edge per distinct (source type, destination type, length), and each edge's bond."""
    src_type = batch.node_type.index_select(0, batch.edge_index[0]).long()
    dst_type = batch.node_type.index_select(0, batch.edge_index[1]).long()
    key = (src_type * len(ELEMENT_TYPES) + dst_type) * n_lengths + edge_row
    bonds, bond_row = torch.unique(key, return_inverse=True)
    edges = torch.arange(key.numel(), device=key.device)
    bond_edge = torch.full_like(bonds, key.numel()).scatter_reduce_(0, bond_row, edges, "amin")
    return bond_edge, bond_row


def bond_basis(expansion: nn.Module, batch: GraphBatch) -> BondBasis:
    """:class:`BondBasis` of ``batch`` with the basis ``expansion`` (MEGNet's ``bond_expansion``)."""
    if batch.edge_length is None:
        bond_vec = batch.pos[batch.edge_index[1]] + batch.pbc_offshift - batch.pos[batch.edge_index[0]]
        edge_length = torch.linalg.vector_norm(bond_vec, dim=1)
    else:
        edge_length = batch.edge_length
    lengths, edge_row = torch.unique(edge_length, return_inverse=True)
    bond_edge, bond_row = _distinct_bonds(batch, edge_row, lengths.numel())
    equal_states = bool((batch.state_attr == batch.state_attr[:1]).all())
    return BondBasis(expansion(lengths), edge_row, bond_edge, bond_row, equal_states)


@dataclass(frozen=True)
class Segments:
    """Index arrays and group sizes of one batch, shared by every block.

    For quotient graphs (:mod:`kappaflow.quotient`) graph means and Set2Set attention weigh each
    node and edge by how many of the full graph's it stands for, node means each edge by how many
    parallel edges it stands for.
    """

    edge_index: Tensor  #: ``(2, num_edges)``
    node_batch: Tensor  #: ``(num_nodes,)``, each node's graph
    edge_batch: Tensor  #: ``(num_edges,)``, each edge's graph
    aggregate: Tensor  #: ``(num_edges,)``, the node each edge message is averaged onto
    node_degree: Tensor  #: ``(num_nodes, 1)``, (counted) messages per node (at least 1)
    graph_edges: Tensor  #: ``(num_graphs, 1)``, (weighted) edges per graph (at least 1)
    graph_nodes: Tensor  #: ``(num_graphs, 1)``, (weighted) nodes per graph (at least 1)
    node_weight: Tensor | None = None  #: ``(num_nodes, 1)``; ``None``: every node counts once
    edge_weight: Tensor | None = None  #: ``(num_edges, 1)``; ``None``: every edge counts once
    edge_count: Tensor | None = None  #: ``(num_edges, 1)``, messages per row in node means; ``None``: 1

    @classmethod
    def of(cls, batch: GraphBatch, destination: bool, dtype: torch.dtype) -> Segments:
        """Segments of ``batch``; messages go to each edge's destination node or (stock matgl ≥ 4) source."""
        if batch.node_weight is not None and not destination:
            raise ValueError("quotient graphs hold every incoming edge of a node: they need destination aggregation")
        edge_batch = batch.batch.index_select(0, batch.edge_index[0])
        aggregate = batch.edge_index[1] if destination else batch.edge_index[0]

        def counts(index: Tensor, size: int, weight: Tensor | None = None) -> Tensor:
            return torch.bincount(index, weight, minlength=size).clamp_(min=1).to(dtype).unsqueeze(1)

        def column(weight: Tensor | None) -> Tensor | None:
            return None if weight is None else weight.to(dtype).unsqueeze(1)

        return cls(
            batch.edge_index, batch.batch, edge_batch, aggregate,
            counts(aggregate, batch.pos.size(0), batch.edge_count), counts(edge_batch, batch.num_graphs, batch.edge_weight),
            counts(batch.batch, batch.num_graphs, batch.node_weight),
            column(batch.node_weight), column(batch.edge_weight), column(batch.edge_count),
        )

    def node_mean(self, edge_feat: Tensor) -> Tensor:
        """Mean of the messages ``edge_feat`` each node receives (parallel edges counted)."""
        counted = edge_feat if self.edge_count is None else edge_feat * self.edge_count
        return segment_mean(counted, self.aggregate, self.node_degree)

    def graph_mean(self, x: Tensor, of_edges: bool) -> Tensor:
        """Per-graph (weighted) mean of edge rows (``of_edges``) or node rows ``x``."""
        index, count, weight = (
            (self.edge_batch, self.graph_edges, self.edge_weight) if of_edges
            else (self.node_batch, self.graph_nodes, self.node_weight)
        )  # fmt: skip
        return segment_mean(x if weight is None else x * weight, index, count)


def segment_mean(x: Tensor, index: Tensor, count: Tensor) -> Tensor:
    """Mean of the rows of ``x`` per group ``index`` (``count``: rows per group, at least 1; empty groups 0)."""
    return x.new_zeros(count.size(0), x.size(1)).index_add_(0, index, x) / count


def run_layers(layers: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Apply matgl MLP layers in turn, SoftPlus2 as ``softplus(x).sub_(log 2)`` (one buffer less).

    Softplus's backward needs only its input, so subtracting in place from its output is safe.
    Linear layers are called as ``F.linear`` (``Module.__call__`` costs ≈5 µs of Python per call).
    """
    for layer in layers:
        if isinstance(layer, SoftPlus2):
            x = F.softplus(x, layer.ssp.beta, layer.ssp.threshold).sub_(_LOG2)
        elif type(layer) is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        else:
            x = layer(x)
    return x


def apply(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``, through :func:`run_layers` for a matgl MLP."""
    return run_layers(module.layers, x) if isinstance(module, MLP) else module(x)


def edge_update(
    conv: MEGNetGraphConv, edge_index: Tensor, edge_feat: Tensor, node_feat: Tensor, state_feat: Tensor,
    edge_batch: Tensor,
) -> Tensor:
    """``conv.edge_update_`` without building the ``[v_src, v_dst, e, u]`` rows of every edge.

    The first linear layer of the edge MLP is split by input block: the node and state parts are
    multiplied once per node and per graph, then gathered onto the edges, so the per-edge product
    only covers the edge features (a quarter of the input width). Same function, summed in a
    different order (float32 rounding differs in the last bits).
    """
    first, rest = conv.edge_func.layers[0], conv.edge_func.layers[1:]
    n_node, n_edge = node_feat.size(1), edge_feat.size(1)
    w_src, w_dst, w_edge, w_state = first.weight.split(
        [n_node, n_node, n_edge, first.in_features - 2 * n_node - n_edge], dim=1
    )
    per_graph = torch.addmm(first.bias, state_feat, w_state.t())
    hidden = torch.addmm(per_graph.index_select(0, edge_batch), edge_feat, w_edge.t())
    hidden = hidden + (node_feat @ w_src.t()).index_select(0, edge_index[0])
    hidden = hidden + (node_feat @ w_dst.t()).index_select(0, edge_index[1])
    return run_layers(rest, hidden)


def block_forward(
    block: MEGNetBlock, seg: Segments, edge_feat: Tensor, node_feat: Tensor, state_feat: Tensor,
    bonds: BondBasis | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``MEGNetBlock.forward``: dense layers, graph convolution (edge, node, state updates), dropout, skip.

    ``bonds`` (first block only, see :class:`BondBasis`): run the edge update on one edge per
    distinct bond and gather it onto the edges.
    """
    inputs = (edge_feat, node_feat, state_feat)
    edge_feat = apply(block.edge_func, edge_feat)
    node_feat = apply(block.node_func, node_feat)
    state_feat = apply(block.state_func, state_feat).reshape(seg.graph_nodes.size(0), -1)
    conv = block.conv
    if bonds is None:
        edge_feat = edge_update(conv, seg.edge_index, edge_feat, node_feat, state_feat, seg.edge_batch)
    else:
        pick = bonds.bond_edge
        edge_feat = edge_update(
            conv, seg.edge_index.index_select(1, pick), edge_feat.index_select(0, pick), node_feat, state_feat,
            seg.edge_batch.index_select(0, pick),
        ).index_select(0, bonds.bond_row)
    incoming = seg.node_mean(edge_feat)
    node_feat = run_layers(
        conv.node_func.layers, torch.cat([node_feat, incoming, state_feat.index_select(0, seg.node_batch)], dim=1)
    )
    per_graph = (seg.graph_mean(edge_feat, of_edges=True), seg.graph_mean(node_feat, of_edges=False))
    state_feat = run_layers(conv.state_func.layers, torch.cat([state_feat, *per_graph], dim=1))
    if block.dropout is not None:
        edge_feat, node_feat, state_feat = block.dropout(edge_feat), block.dropout(node_feat), block.dropout(state_feat)
    if block.skip:
        edge_feat = edge_feat + inputs[0]
        node_feat = node_feat + inputs[1]
        state_feat = state_feat + inputs[2]
    return edge_feat, node_feat, state_feat


def set2set(
    lstm: nn.LSTM, x: Tensor, index: Tensor, num_graphs: int, n_iters: int, weight: Tensor | None = None
) -> Tensor:
    """Set2Set readout of rows ``x`` grouped by ``index``, shape ``(num_graphs, 2 * width)``.

    The function of matgl's ``Set2SetReadOut`` (nodes) and ``EdgeSet2Set`` (edges) for a one-layer
    LSTM, stepped with one ``torch.lstm_cell`` call per iteration instead of a sequence-length-1
    ``nn.LSTM`` (a fraction of the per-call cost at batch 8). A set with no rows reads out zeros.
    ``weight`` ``(rows, 1)``: how many rows each stands for (its attention is multiplied by it).
    """
    if lstm.num_layers != 1:
        raise ValueError(f"Set2Set fast path needs a one-layer LSTM, got {lstm.num_layers} layers")
    width = x.size(1)
    if x.size(0) == 0:
        return x.new_zeros(num_graphs, 2 * width)
    log_weight = None if weight is None else weight.log()
    h = c = x.new_zeros(num_graphs, width)
    q_star = x.new_zeros(num_graphs, 2 * width)
    weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    for _ in range(n_iters):
        h, c = torch.lstm_cell(q_star, (h, c), *weights)
        score = (x * h.index_select(0, index)).sum(dim=1, keepdim=True)
        if log_weight is not None:
            score = score + log_weight
        attention = pyg_softmax(score, index, num_nodes=num_graphs)
        readout = x.new_zeros(num_graphs, width).index_add_(0, index, x * attention)
        q_star = torch.cat([h, readout], dim=1)
    return q_star


def megnet_features(net: MEGNet, batch: GraphBatch, basis: BondBasis | None = None) -> Tensor:
    """``net``'s output MLP applied to its readout of ``batch`` (matgl's ``MEGNet.forward`` without the target transform).

    ``basis``: :func:`bond_basis` of ``batch`` when already computed (e.g. once for an ensemble).
    """
    basis = bond_basis(net.bond_expansion, batch) if basis is None else basis
    destination = isinstance(net.blocks[0].conv, DestinationMEGNetGraphConv) if len(net.blocks) else True
    seg = Segments.of(batch, destination, batch.pos.dtype)
    num_graphs = batch.num_graphs
    node_feat, edge_feat, state_feat = net.embedding(batch.node_type, basis.rows, batch.state_attr)
    edge_feat = apply(net.edge_encoder, edge_feat).index_select(0, basis.edge_row)
    node_feat = apply(net.node_encoder, node_feat)
    state_feat = apply(net.state_encoder, state_feat)
    for index, block in enumerate(net.blocks):
        bonds = basis if index == 0 and basis.equal_states else None
        edge_feat, node_feat, state_feat = block_forward(block, seg, edge_feat, node_feat, state_feat, bonds)
        state_feat = state_feat.reshape(num_graphs, -1)
    node_vec = set2set(net.node_s2s.lstm, node_feat, seg.node_batch, num_graphs, net.node_s2s.n_iters, seg.node_weight)
    edge_vec = set2set(net.edge_s2s.lstm, edge_feat, seg.edge_batch, num_graphs, net.edge_s2s.n_iters, seg.edge_weight)
    return apply(net.output_proj, torch.cat([node_vec, edge_vec, state_feat], dim=-1))
