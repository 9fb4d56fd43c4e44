"""CHGNet 0.3.0, the MPtrj-pretrained potential shipped in the ``chgnet`` wheel (imported on use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pymatgen.core import Element, Structure
from torch import Tensor, nn

from kappaflow.backbones.base import Backbone, BackboneSpec

if TYPE_CHECKING:
    from chgnet.graph import CrystalGraph


class CHGNet030(Backbone):
    """CHGNet 0.3.0 (MPtrj): energies and crystal features from one energy-only forward pass.

    Representation: its crystal features (64), the mean over atoms of the last atom-convolution
    features after the readout norm; its energy readout is a per-atom MLP on these atom features.
    """

    spec = BackboneSpec(
        name="chgnet-0.3.0",
        description="CHGNet 0.3.0 universal potential trained on MPtrj (chgnet package)",
        source="chgnet",
        cutoff=6.0,
        elements=tuple(Element.from_Z(z).symbol for z in range(1, 95)),
        three_body=True,
        representation_dim=64,
        reference="Total energies per atom (eV/atom) of the package's own CHGNetCalculator, to 1e-5 eV/atom.",
    )

    def __init__(self, device: str = "cpu") -> None:
        from chgnet.model import CHGNet

        self.model = CHGNet.load(model_name="0.3.0", use_device=device, verbose=False).eval()
        self.device = torch.device(device)

    @property
    def module(self) -> nn.Module:
        """The CHGNet model (its composition model's reference energies stay frozen, as the package sets them)."""
        return self.model

    def collate(self, structures: Sequence[Structure]) -> list[CrystalGraph]:
        """The model's own crystal graphs of ``structures``, on its device (it batches them in its forward)."""
        return [self._graph(structure) for structure in structures]

    def _graph(self, structure: Structure) -> CrystalGraph:
        """The crystal graph of ``structure`` with constant coordinates and lattice: the converter makes them
        require gradients, for forces and stresses, which nothing here computes."""
        graph = self.model.graph_converter(structure)
        graph.atom_frac_coord, graph.lattice = graph.atom_frac_coord.detach(), graph.lattice.detach()
        return graph.to(self.device)

    def outputs(self, batch: list[CrystalGraph]) -> tuple[Tensor, Tensor]:
        """Energies per atom (eV/atom) and crystal features of ``batch``."""
        prediction = self.model(batch, task="e", return_crystal_feas=True)
        return prediction["e"], prediction["crystal_fea"]
