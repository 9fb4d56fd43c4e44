"""KappaNet: MEGNet backbone (up to its 16-dim output features) followed by an MLP head.

The backbone is matgl's MEGNet with the original destination-node aggregation
(:mod:`kappaflow.backbone`). Its output MLP ``160 → 32 → 16 → 1`` is cut after the ``32 → 16``
linear layer, exactly as the ParAIsite code did (no activation on the 16 features, the final
``16 → 1`` layer dropped), and the head ``16 → 450 → 350 → 350 → 1`` with ReLU predicts the
standardised target ``(log10(κ + 1) - mean) / std``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matgl.models import MEGNet
from torch import Tensor, nn

from kappaflow.backbone import build_megnet, load_pretrained_megnet, read_init_args
from kappaflow.graphs import GraphBatch

#: Head widths of the paper (ParAIsite ``myMLP(16, 450, 350, 350, 0, 1)``).
PAPER_HEAD_HIDDEN: tuple[int, ...] = (450, 350, 350)


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

    def features(self, batch: GraphBatch) -> Tensor:
        """Per-structure backbone features, shape ``(num_graphs, 16)``."""
        net = self.backbone
        node_batch = batch.batch
        edge_index = batch.edge_index
        num_graphs = batch.num_graphs
        num_nodes = batch.pos.size(0)
        edge_batch = node_batch[edge_index[0]]
        bond_vec = batch.pos[edge_index[1]] + batch.pbc_offshift - batch.pos[edge_index[0]]
        edge_attr = net.bond_expansion(torch.linalg.vector_norm(bond_vec, dim=1))
        node_feat, edge_feat, state_feat = net.embedding(batch.node_type, edge_attr, batch.state_attr)
        edge_feat = net.edge_encoder(edge_feat)
        node_feat = net.node_encoder(node_feat)
        state_feat = net.state_encoder(state_feat)
        for block in net.blocks:
            edge_feat, node_feat, state_feat = block(
                edge_index, edge_feat, node_feat, state_feat, node_batch, edge_batch, num_nodes, num_graphs
            )
            state_feat = state_feat.reshape(num_graphs, -1)
        node_vec = net.node_s2s(node_feat, node_batch, dim_size=num_graphs).reshape(num_graphs, -1)
        edge_vec = net.edge_s2s(edge_feat, edge_batch, num_graphs=num_graphs).reshape(num_graphs, -1)
        vec = torch.cat([node_vec, edge_vec, state_feat], dim=-1)
        return net.output_proj(vec)

    def forward(self, batch: GraphBatch) -> Tensor:
        """Standardised predictions, shape ``(num_graphs,)``."""
        return self.head(self.features(batch)).reshape(-1)

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
