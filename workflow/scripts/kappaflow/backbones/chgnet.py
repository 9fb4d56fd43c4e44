"""CHGNet 0.3.0, the MPtrj-pretrained potential shipped in the ``chgnet`` wheel (imported on use)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Element, Structure

from kappaflow.backbones.base import Backbone, BackboneSpec


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

    @torch.no_grad()
    def _forward(self, structures: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray]:
        graphs = [self.model.graph_converter(structure).to(self.device) for structure in structures]
        prediction = self.model(graphs, task="e", return_crystal_feas=True)
        return prediction["e"].cpu().numpy(), prediction["crystal_fea"].cpu().numpy()
