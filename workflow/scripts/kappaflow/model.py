"""KappaNet: MEGNet backbone (up to its 16-dim output features) followed by an MLP head.

The backbone is matgl's MEGNet with the original destination-node aggregation
(:mod:`kappaflow.backbone`). Its output MLP ``160 → 32 → 16 → 1`` is cut after the ``32 → 16``
linear layer, exactly as the ParAIsite code did (no activation on the 16 features, the final
``16 → 1`` layer dropped), and the head ``16 → 450 → 350 → 350 → 1`` with ReLU predicts the
standardised target ``(log10(κ + 1) - mean) / std``.

:meth:`KappaNet.features` runs matgl's modules with two changes that compute the same function
faster (tested against matgl's own forward, values and gradients): the edge encoder runs once per
distinct edge length and the first block's edge update once per distinct bond (:class:`BondBasis`), the first layer of each edge MLP is split by input
block (:func:`_edge_update`: node and state parts multiplied per node and per graph, not per
edge), Set2Set steps an LSTM cell (:func:`_set2set`), and SoftPlus2 subtracts ``log 2`` in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matgl.layers import MLP
from matgl.layers._activations import SoftPlus2
from matgl.layers._graph_convolution import MEGNetBlock, MEGNetGraphConv
from matgl.models import MEGNet
from torch import Tensor, nn
from torch_geometric.utils import softmax as pyg_softmax

from kappaflow.backbone import build_megnet, load_pretrained_megnet, read_init_args
from kappaflow.graphs import GraphBatch

#: Head widths of the paper (ParAIsite ``myMLP(16, 450, 350, 350, 0, 1)``).
PAPER_HEAD_HIDDEN: tuple[int, ...] = (450, 350, 350)
_LOG2 = math.log(2.0)


def _run_layers(layers: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Apply matgl MLP layers in turn, SoftPlus2 as ``softplus(x).sub_(log 2)`` (one buffer less).

    Softplus's backward needs only its input, so subtracting in place from its output is safe.
    """
    for layer in layers:
        if isinstance(layer, SoftPlus2):
            x = F.softplus(x, layer.ssp.beta, layer.ssp.threshold).sub_(_LOG2)
        else:
            x = layer(x)
    return x


def _apply(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``, through :func:`_run_layers` for a matgl MLP."""
    return _run_layers(module.layers, x) if isinstance(module, MLP) else module(x)


@dataclass(frozen=True)
class BondBasis:
    """The edge-length basis of a batch, one row per distinct length, and the batch's distinct bonds.

    Until the first graph convolution, an edge's features are a function of its length only, and
    symmetry makes many lengths equal (in the mirror's AFLOW batches 1 in 5 is distinct, in the
    screening set 1 in 3). The basis expansion, the edge embedding and the edge encoder therefore run
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
    n_types = int(batch.node_type.max()) + 1 if batch.node_type.numel() else 1
    key = (src_type * n_types + dst_type) * n_lengths + edge_row
    bonds, bond_row = torch.unique(key, return_inverse=True)
    edges = torch.arange(key.numel(), device=key.device)
    bond_edge = torch.full_like(bonds, key.numel()).scatter_reduce_(0, bond_row, edges, "amin")
    return bond_edge, bond_row


def _edge_update(
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
    return _run_layers(rest, hidden)


def _block_forward(
    block: MEGNetBlock, edge_index: Tensor, edge_feat: Tensor, node_feat: Tensor, state_feat: Tensor,
    node_batch: Tensor, edge_batch: Tensor, num_nodes: int, num_graphs: int, bonds: BondBasis | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``MEGNetBlock.forward`` (dense layers, graph convolution, dropout, skip) with :func:`_edge_update`.

    The node and state updates are the convolution's own (so its aggregation convention holds).
    ``bonds`` (first block only, see :class:`BondBasis`): run the edge update on one edge per
    distinct bond and gather it onto the edges.
    """
    inputs = (edge_feat, node_feat, state_feat)
    edge_feat = _apply(block.edge_func, edge_feat)
    node_feat = _apply(block.node_func, node_feat)
    state_feat = _apply(block.state_func, state_feat).reshape(num_graphs, -1)
    conv = block.conv
    if bonds is None:
        edge_feat = _edge_update(conv, edge_index, edge_feat, node_feat, state_feat, edge_batch)
    else:
        pick = bonds.bond_edge
        edge_feat = _edge_update(
            conv, edge_index.index_select(1, pick), edge_feat.index_select(0, pick), node_feat, state_feat,
            edge_batch.index_select(0, pick),
        ).index_select(0, bonds.bond_row)
    node_feat = conv.node_update_(edge_index, edge_feat, node_feat, state_feat.index_select(0, node_batch), num_nodes)
    state_feat = conv.state_update_(edge_feat, node_feat, state_feat, edge_batch, node_batch, num_graphs)
    if block.dropout is not None:
        edge_feat, node_feat, state_feat = block.dropout(edge_feat), block.dropout(node_feat), block.dropout(state_feat)
    if block.skip:
        edge_feat = edge_feat + inputs[0]
        node_feat = node_feat + inputs[1]
        state_feat = state_feat + inputs[2]
    return edge_feat, node_feat, state_feat


def _set2set(lstm: nn.LSTM, x: Tensor, index: Tensor, num_graphs: int, n_iters: int) -> Tensor:
    """Set2Set readout of rows ``x`` grouped by ``index``, shape ``(num_graphs, 2 * width)``.

    The function of matgl's ``Set2SetReadOut`` (nodes) and ``EdgeSet2Set`` (edges) for a one-layer
    LSTM, stepped with one ``torch.lstm_cell`` call per iteration instead of a sequence-length-1
    ``nn.LSTM`` (a fraction of the per-call cost at batch 8). A set with no rows reads out zeros.
    """
    if lstm.num_layers != 1:
        raise ValueError(f"Set2Set fast path needs a one-layer LSTM, got {lstm.num_layers} layers")
    width = x.size(1)
    if x.size(0) == 0:
        return x.new_zeros(num_graphs, 2 * width)
    h = c = x.new_zeros(num_graphs, width)
    q_star = x.new_zeros(num_graphs, 2 * width)
    weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    for _ in range(n_iters):
        h, c = torch.lstm_cell(q_star, (h, c), *weights)
        attention = pyg_softmax((x * h.index_select(0, index)).sum(dim=1, keepdim=True), index, num_nodes=num_graphs)
        readout = x.new_zeros(num_graphs, width).index_add_(0, index, x * attention)
        q_star = torch.cat([h, readout], dim=1)
    return q_star


def make_head(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """MLP ``in → hidden... → 1`` with ReLU between layers."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class KappaNet(nn.Module):
    """MEGNet features (16 per structure) → MLP head → one standardised target per structure."""

    def __init__(
        self,
        backbone: MEGNet,
        init_args: dict[str, Any],
        head_hidden: Sequence[int] = PAPER_HEAD_HIDDEN,
        freeze_backbone: bool = False,
    ) -> None:
        """Wrap ``backbone`` (its last output layer is dropped) and add a fresh head.

        Args:
            backbone: a MEGNet (random or pretrained) with the aggregation already chosen.
            init_args: the constructor arguments of ``backbone`` (stored in checkpoints).
            head_hidden: hidden widths of the head.
            freeze_backbone: keep every backbone parameter fixed.
        """
        super().__init__()
        self.init_args = dict(init_args)
        self.head_hidden = tuple(int(h) for h in head_hidden)
        self.freeze_backbone = bool(freeze_backbone)
        self.backbone = backbone
        # Linear(160, 32), SoftPlus2, Linear(32, 16): the final Linear(16, 1) is dropped.
        self.backbone.output_proj.layers = self.backbone.output_proj.layers[:-2]
        n_features = self.backbone.output_proj.layers[-1].out_features
        self.head = make_head(n_features, self.head_hidden)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)

    def bond_basis(self, batch: GraphBatch) -> BondBasis:
        """Basis expansion of every distinct edge length in ``batch`` (see :class:`BondBasis`)."""
        bond_vec = batch.pos[batch.edge_index[1]] + batch.pbc_offshift - batch.pos[batch.edge_index[0]]
        lengths, edge_row = torch.unique(torch.linalg.vector_norm(bond_vec, dim=1), return_inverse=True)
        bond_edge, bond_row = _distinct_bonds(batch, edge_row, lengths.numel())
        equal_states = bool((batch.state_attr == batch.state_attr[:1]).all())
        return BondBasis(self.backbone.bond_expansion(lengths), edge_row, bond_edge, bond_row, equal_states)

    def shares_bond_basis(self, other: KappaNet) -> bool:
        """Whether ``other.bond_basis`` equals this model's on any batch.

        True for two fixed Gaussian expansions (MEGNet's: no trainable parameter) with equal centres
        and width; False whenever in doubt.
        """
        mine, theirs = self.backbone.bond_expansion, other.backbone.bond_expansion
        if not all(getattr(m, "rbf_type", None) == "Gaussian" for m in (mine, theirs)):
            return False
        a, b = mine.rbf, theirs.rbf
        return (
            type(a) is type(b)
            and not a.centers.requires_grad
            and not b.centers.requires_grad
            and torch.equal(a.centers, b.centers)
            and torch.equal(torch.as_tensor(a.width), torch.as_tensor(b.width))
        )

    def features(self, batch: GraphBatch, bond_basis: BondBasis | None = None) -> Tensor:
        """Per-structure backbone features, shape ``(num_graphs, 16)``.

        ``bond_basis``: :meth:`bond_basis` of ``batch`` when already computed (an ensemble whose
        models :meth:`shares_bond_basis` computes it once per batch).
        """
        net = self.backbone
        node_batch = batch.batch
        edge_index = batch.edge_index
        num_graphs = batch.num_graphs
        num_nodes = batch.pos.size(0)
        edge_batch = node_batch[edge_index[0]]
        basis = self.bond_basis(batch) if bond_basis is None else bond_basis
        node_feat, edge_feat, state_feat = net.embedding(batch.node_type, basis.rows, batch.state_attr)
        edge_feat = _apply(net.edge_encoder, edge_feat).index_select(0, basis.edge_row)
        node_feat = _apply(net.node_encoder, node_feat)
        state_feat = _apply(net.state_encoder, state_feat)
        for index, block in enumerate(net.blocks):
            bonds = basis if index == 0 and basis.equal_states else None
            edge_feat, node_feat, state_feat = _block_forward(
                block, edge_index, edge_feat, node_feat, state_feat, node_batch, edge_batch, num_nodes, num_graphs,
                bonds,
            )
            state_feat = state_feat.reshape(num_graphs, -1)
        node_vec = _set2set(net.node_s2s.lstm, node_feat, node_batch, num_graphs, net.node_s2s.n_iters)
        edge_vec = _set2set(net.edge_s2s.lstm, edge_feat, edge_batch, num_graphs, net.edge_s2s.n_iters)
        vec = torch.cat([node_vec, edge_vec, state_feat], dim=-1)
        return net.output_proj(vec)

    def forward(self, batch: GraphBatch, bond_basis: BondBasis | None = None) -> Tensor:
        """Standardised predictions, shape ``(num_graphs,)`` (``bond_basis`` as in :meth:`features`)."""
        return self.head(self.features(batch, bond_basis)).reshape(-1)

    def config(self) -> dict[str, Any]:
        """Everything :func:`kappanet_from_config` needs to rebuild this architecture."""
        return {
            "init_args": self.init_args,
            "head_hidden": list(self.head_hidden),
            "freeze_backbone": self.freeze_backbone,
            "aggregation": "destination",
        }


def build_kappanet(
    pretrained_dir: str | Path | None,
    head_hidden: Sequence[int] = PAPER_HEAD_HIDDEN,
    freeze_backbone: bool = False,
    init_args: dict[str, Any] | None = None,
) -> KappaNet:
    """KappaNet with a pretrained backbone (``pretrained_dir``) or a random one (``None``, step I).

    Args:
        pretrained_dir: matgl model folder (``model.json`` + ``state.pt``), or ``None``.
        head_hidden: hidden widths of the head.
        freeze_backbone: keep the backbone fixed.
        init_args: MEGNet constructor arguments for a random backbone; defaults to those in
            ``pretrained_dir``'s ``model.json`` when given, else matgl's defaults.
    """
    if pretrained_dir is not None:
        backbone = load_pretrained_megnet(pretrained_dir).train()
        args = read_init_args(pretrained_dir)
    else:
        args = dict(init_args or {})
        backbone = build_megnet(args)
    return KappaNet(backbone, args, head_hidden, freeze_backbone)


def kappanet_from_config(config: dict[str, Any]) -> KappaNet:
    """Rebuild a (randomly initialised) KappaNet from :meth:`KappaNet.config`."""
    backbone = build_megnet(dict(config["init_args"]), config.get("aggregation", "destination"))
    return KappaNet(backbone, config["init_args"], config["head_hidden"], config.get("freeze_backbone", False))
