"""The interface every pretrained backbone offers: energies to check it against its reference,
per-structure representations to use it frozen, and the same representations with gradients (and its
weights' state) to fine-tune it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pymatgen.core import Element, Structure
from torch import Tensor, nn

#: Structures per forward pass of :meth:`Backbone.energies`.
ENERGY_BATCH_SIZE = 32


@dataclass(frozen=True)
class BackboneSpec:
    """What a pretrained backbone is, needs and must reproduce."""

    name: str  #: stable config name (a key of ``kappaflow.backbones.BACKBONES``)
    description: str
    source: str  #: mirror folder under ``pretrained/``, or the Python package that ships the weights
    cutoff: float  #: neighbour cutoff of its graph (Å)
    elements: tuple[str, ...]  #: element symbols it has embeddings for
    three_body: bool  #: whether it has explicit three-body (bond-angle) interactions
    representation_dim: int  #: columns of :meth:`Backbone.represent`
    reference: str  #: one sentence: the values it must reproduce before anything uses it


class Backbone(ABC):
    """A pretrained model, one batch of structures at a time: evaluated without gradients
    (:meth:`energies`, :meth:`represent`) or differentiably for fine-tuning (:meth:`collate`, :meth:`embed`)."""

    spec: ClassVar[BackboneSpec]
    device: torch.device

    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """The network whose parameters fine-tuning trains (and whose state a checkpoint stores): :meth:`outputs`
        depends on no other weights, though some of its parameters (heads the representation does not reach)
        get no gradient."""

    @abstractmethod
    def collate(self, structures: Sequence[Structure]) -> Any:
        """One batch of ``structures`` in the backbone's own graph form (its cutoff and elements), on its device."""

    @abstractmethod
    def outputs(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Energies ``(b,)`` (the quantity of ``spec.reference``) and representations
        ``(b, representation_dim)`` of a batch made by :meth:`collate`, from one pass, differentiable with
        respect to :attr:`module`'s parameters."""

    def embed(self, batch: Any) -> Tensor:
        """Representations ``(b, representation_dim)`` of a batch made by :meth:`collate`, with gradients."""
        return self.outputs(batch)[1]

    def state_dict(self) -> dict[str, Tensor]:
        """The weights of :attr:`module` (what a fine-tuned checkpoint stores)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load :meth:`state_dict` output, every key matched.

        Raises:
            RuntimeError: if a key is missing or unexpected, or a shape differs.
        """
        self.module.load_state_dict(state, strict=True)

    def supports(self, structure: Structure) -> str | None:
        """``None`` if the backbone can evaluate ``structure``, else a one-line reason."""
        if not structure.is_ordered:
            return f"disordered sites, which {self.spec.name} cannot represent"
        symbols = {element.symbol for element in structure.composition.element_composition}
        outside = sorted(symbols - set(self.spec.elements), key=lambda symbol: Element(symbol).Z)
        if outside:
            return f"element(s) {', '.join(outside)} outside {self.spec.name}'s element types"
        return None

    def energies(self, structures: Sequence[Structure]) -> np.ndarray:
        """The quantity of the backbone's reference (eV/atom, see ``spec.reference``), shape ``(n,)``."""
        return self._evaluate(structures, ENERGY_BATCH_SIZE)[0]

    def represent(self, structures: Sequence[Structure], batch_size: int = 32) -> np.ndarray:
        """Per-structure representations, float64, shape ``(n, spec.representation_dim)``."""
        return self._evaluate(structures, batch_size)[1]

    def _evaluate(self, structures: Sequence[Structure], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Energies and representations of ``structures``, ``batch_size`` at a time.

        Raises:
            ValueError: if a structure is not supported, or ``batch_size`` < 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for index, structure in enumerate(structures):
            if reason := self.supports(structure):
                raise ValueError(f"structure {index} ({structure.composition.reduced_formula}): {reason}")
        energies = [np.zeros(0)]
        representations = [np.zeros((0, self.spec.representation_dim))]
        for start in range(0, len(structures), batch_size):
            energy, representation = self._forward(structures[start : start + batch_size])
            energies.append(np.asarray(energy, dtype=np.float64).reshape(-1))
            representations.append(np.asarray(representation, dtype=np.float64))
        return np.concatenate(energies), np.concatenate(representations)

    def _forward(self, structures: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray]:
        """Energies ``(b,)`` and representations ``(b, representation_dim)`` of one batch, without gradients."""
        with torch.no_grad():
            energy, representation = self.outputs(self.collate(structures))
        return energy.cpu().numpy(), representation.cpu().numpy()
