"""KappaNet: MEGNet backbone (up to its 16-dim output features) followed by an MLP head.

The backbone is matgl's MEGNet with the original destination-node aggregation
(:mod:`kappaflow.backbone`). Its output MLP ``160 → 32 → 16 → 1`` is cut after the ``32 → 16``
linear layer, exactly as the ParAIsite code did (no activation on the 16 features, the final
``16 → 1`` layer dropped), and the head ``16 → 450 → 350 → 350 → 1`` with ReLU predicts the
standardised target ``(log10(κ + 1) - mean) / std``.

:meth:`KappaNet.features` computes the backbone's function with the shortcuts of
:mod:`kappaflow.megnet_forward` (tested against matgl's own modules, values and gradients).
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
from kappaflow.megnet_forward import BondBasis, bond_basis, megnet_features, run_layers

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

    @property
    def cutoff(self) -> float:
        """Graph cutoff (Å) of the backbone (MEGNet's 4 Å when its constructor arguments do not say)."""
        return float(self.init_args.get("cutoff", 4.0))

    def bond_basis(self, batch: GraphBatch) -> BondBasis:
        """Basis expansion of every distinct edge length in ``batch`` and its distinct bonds (:class:`BondBasis`)."""
        return bond_basis(self.backbone.bond_expansion, batch)

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
        return megnet_features(self.backbone, batch, bond_basis)

    def head_output(self, features: Tensor) -> Tensor:
        """Standardised predictions from :meth:`features`' output, shape ``(num_graphs,)``."""
        return run_layers(self.head, features).reshape(-1)

    def forward(self, batch: GraphBatch, bond_basis: BondBasis | None = None) -> Tensor:
        """Standardised predictions, shape ``(num_graphs,)`` (``bond_basis`` as in :meth:`features`)."""
        return self.head_output(self.features(batch, bond_basis))

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
