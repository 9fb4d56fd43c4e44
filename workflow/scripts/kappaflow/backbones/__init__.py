"""Pretrained backbones behind one interface (:class:`Backbone`), by stable config name.

Each backbone reproduces its reference values (``spec.reference``, tested in ``tests/backbones``)
and gives per-structure representations for frozen-feature models, and the same representations with
gradients for fine-tuning (:mod:`kappaflow.backbones.network`, :mod:`kappaflow.training.finetune`). The matgl ones read the
mirror's ``pretrained/`` folder; CHGNet and SevenNet come with their packages (the ``backbones``
extra), which are imported only when those backbones are built.
"""

from __future__ import annotations

from pathlib import Path

from kappaflow.backbones._matgl import MatglBackbone
from kappaflow.backbones.base import Backbone, BackboneSpec
from kappaflow.backbones.chgnet import CHGNet030
from kappaflow.backbones.m3gnet import M3GNetEform, M3GNetMatPES
from kappaflow.backbones.megnet import MEGNetEform
from kappaflow.backbones.sevennet import SevenNet0
from kappaflow.backbones.tensornet import TensorNetMatPES

__all__ = ["BACKBONES", "Backbone", "BackboneSpec", "load_backbone"]

BACKBONES: dict[str, type[Backbone]] = {
    cls.spec.name: cls
    for cls in (MEGNetEform, M3GNetEform, TensorNetMatPES, M3GNetMatPES, CHGNet030, SevenNet0)
}


def load_backbone(name: str, pretrained_root: Path, device: str = "cpu") -> Backbone:
    """The backbone called ``name``, with its pretrained weights, in eval mode on ``device``.

    Args:
        name: a key of :data:`BACKBONES`.
        pretrained_root: the mirror's ``pretrained/`` folder (used by the matgl backbones).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    cls = BACKBONES[name]
    if issubclass(cls, MatglBackbone):
        return cls(pretrained_root, device)
    return cls(device)
