"""Pretrained MEGNet backbone with the original (destination-node) aggregation convention.

matgl ≥ 4 averages each edge message onto the edge's *source* node. The pretrained
``MEGNet-MP-2018.6.1-Eform`` weights were trained with the original DGL implementation, which
averages over a node's *incoming* edges (the edge's *destination*). Unpatched, formation energies
are ≈0.3 eV/atom off; :class:`DestinationMEGNetGraphConv` restores the original convention.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from matgl.layers._graph_convolution import MEGNetGraphConv
from matgl.models import MEGNet
from torch import Tensor
from torch_geometric.utils import scatter

Aggregation = Literal["destination", "source"]

#: Formation energy (eV/atom) = raw model output * EFORM_STD + EFORM_MEAN.
EFORM_MEAN = -1.65459073
EFORM_STD = 1.07266128


class DestinationMEGNetGraphConv(MEGNetGraphConv):
    """MEGNet graph convolution that averages edge messages onto each edge's destination node."""

    def node_update_(
        self,
        edge_index: Tensor,
        edge_feat: Tensor,
        node_feat: Tensor,
        u_per_node: Tensor,
        num_nodes: int,
    ) -> Tensor:
        """Node update: mean over incoming edges (destination), then MLP."""
        incoming = scatter(edge_feat, edge_index[1].long(), dim=0, dim_size=num_nodes, reduce="mean")
        return self.node_func(torch.hstack([node_feat, incoming, u_per_node]))


def use_destination_aggregation(model: MEGNet) -> MEGNet:
    """Switch every graph convolution of ``model`` to the destination convention, in place."""
    for block in model.blocks:
        conv = block.conv
        if not isinstance(conv, DestinationMEGNetGraphConv):
            conv.__class__ = DestinationMEGNetGraphConv
    return model


def read_init_args(model_dir: str | Path) -> dict[str, Any]:
    """Constructor arguments of the MEGNet stored in a matgl ``model.json`` (``None`` values dropped)."""
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    init_args = meta["kwargs"]["model"]["init_args"] if "kwargs" in meta else meta["init_args"]
    return {key: value for key, value in init_args.items() if value is not None}


def build_megnet(
    init_args: dict[str, Any], aggregation: Aggregation = "destination"
) -> MEGNet:
    """A randomly initialised MEGNet with the given constructor arguments and aggregation."""
    model = MEGNet(**init_args)
    if aggregation == "destination":
        use_destination_aggregation(model)
    elif aggregation != "source":
        raise ValueError(f"unknown aggregation {aggregation!r}; expected 'destination' or 'source'")
    return model


def load_pretrained_megnet(
    model_dir: str | Path, aggregation: Aggregation = "destination"
) -> MEGNet:
    """Build MEGNet from ``model.json`` + ``state.pt`` (``weights_only=True``), every key matched.

    Args:
        model_dir: folder holding matgl's ``model.json`` and ``state.pt``.
        aggregation: ``"destination"`` (original convention, matches the weights) or
            ``"source"`` (stock matgl ≥ 4, kept only to show the discrepancy).

    Raises:
        FileNotFoundError: if either file is missing.
        RuntimeError: if any key is missing or unexpected.
    """
    model_dir = Path(model_dir)
    for name in ("model.json", "state.pt"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"pretrained MEGNet: {model_dir / name} not found")
    model = build_megnet(read_init_args(model_dir), aggregation)
    state = torch.load(model_dir / "state.pt", map_location="cpu", weights_only=True)
    state = {key.removeprefix("model."): value for key, value in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
