"""BackboneNet: any backbone's differentiable representation followed by the paper's MLP head.

MEGNet-2018 is fine-tuned by :class:`kappaflow.model.KappaNet` (steps I-III, its fast path and the paper's cut
of the output MLP). Every other backbone of :data:`kappaflow.backbones.BACKBONES` is fine-tuned through its
interface: :meth:`~kappaflow.backbones.base.Backbone.collate` builds the backbone's own graphs (its cutoff,
its elements), :meth:`~kappaflow.backbones.base.Backbone.embed` gives the representation with gradients, and
a fresh head ``representation_dim → hidden... → 1`` predicts the standardised target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pymatgen.core import Structure
from torch import Tensor, nn

from kappaflow.backbones.base import Backbone
from kappaflow.model import PAPER_HEAD_HIDDEN, make_head

#: ``model_config["kind"]`` of a fine-tuned backbone's checkpoint (KappaNet's has no ``kind``).
KIND = "backbone"


@dataclass(frozen=True)
class StructureBatch:
    """One batch in a backbone's own graph form, collated on the backbone's device."""

    inputs: Any
    num_graphs: int
    device: torch.device

    def to(self, device: torch.device | str) -> StructureBatch:
        """This batch, which already lives on ``device``.

        Raises:
            ValueError: for another device (collate on the device that trains: the backbone's).
        """
        if torch.device(device).type != self.device.type:
            raise ValueError(f"batch collated on {self.device}, asked for {device}: build the backbone there")
        return self


class BackboneNet(nn.Module):
    """A backbone's representation → MLP head → one standardised target per structure."""

    def __init__(
        self, backbone: Backbone, head_hidden: Sequence[int] = PAPER_HEAD_HIDDEN, freeze_backbone: bool = False
    ) -> None:
        """Wrap ``backbone`` (pretrained weights as loaded) and add a fresh head on its representation."""
        super().__init__()
        self.backbone = backbone
        self.network = backbone.module.train()  # registered: trained, moved and saved with the head
        self.head_hidden = tuple(int(h) for h in head_hidden)
        self.freeze_backbone = bool(freeze_backbone)
        self.head = make_head(backbone.spec.representation_dim, self.head_hidden)
        if self.freeze_backbone:
            self.network.requires_grad_(False)

    @property
    def cutoff(self) -> float:
        """The backbone's graph cutoff (Å)."""
        return self.backbone.spec.cutoff

    def collate(self, structures: Sequence[Structure]) -> StructureBatch:
        """``structures`` as one batch of the backbone's graphs."""
        return StructureBatch(self.backbone.collate(structures), len(structures), self.backbone.device)

    def features(self, batch: StructureBatch) -> Tensor:
        """The backbone's representation, shape ``(num_graphs, representation_dim)``."""
        return self.backbone.embed(batch.inputs)

    def head_output(self, features: Tensor) -> Tensor:
        """Standardised predictions from :meth:`features`' output, shape ``(num_graphs,)``."""
        return self.head(features).reshape(-1)

    def forward(self, batch: StructureBatch) -> Tensor:
        """Standardised predictions, shape ``(num_graphs,)``."""
        return self.head_output(self.features(batch))

    def config(self) -> dict[str, Any]:
        """What :func:`backbone_net_from_config` needs (with the pretrained backbone) to rebuild this network."""
        return {"kind": KIND, "backbone": self.backbone.spec.name, "head_hidden": list(self.head_hidden),
                "freeze_backbone": self.freeze_backbone}


def backbone_net_from_config(config: dict[str, Any], backbone: Backbone) -> BackboneNet:
    """:class:`BackboneNet` of :meth:`BackboneNet.config` around ``backbone`` (load the trained weights next).

    Raises:
        ValueError: if ``config`` is not a fine-tuned backbone's, or names another backbone.
    """
    if config.get("kind") != KIND:
        raise ValueError("not the configuration of a fine-tuned backbone (no kind 'backbone')")
    if config["backbone"] != backbone.spec.name:
        raise ValueError(f"checkpoint of {config['backbone']}, given backbone {backbone.spec.name}")
    return BackboneNet(backbone, config["head_hidden"], config.get("freeze_backbone", False))
