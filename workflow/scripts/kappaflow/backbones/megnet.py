"""MEGNet-MP-2018.6.1-Eform, loaded with the original aggregation by :mod:`kappaflow.backbone`."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from kappaflow.backbone import EFORM_MEAN, EFORM_STD, load_pretrained_megnet
from kappaflow.backbones._matgl import MatglBackbone, MatglBatch
from kappaflow.backbones.base import BackboneSpec
from kappaflow.graphs import ELEMENT_TYPES


class MEGNetEform(MatglBackbone):
    """MEGNet formation-energy model (MP 2018.6.1), destination aggregation as originally trained.

    Representation: the input of its output MLP, i.e. the Set2Set readouts of the node (64) and
    edge (64) features concatenated with the state features (32): 160 values.
    """

    spec = BackboneSpec(
        name="megnet-2018-eform",
        description="MEGNet trained on MP 2018.6.1 formation energies (matgl weights of the original model)",
        source="MEGNet-MP-2018.6.1-Eform",
        cutoff=4.0,
        elements=ELEMENT_TYPES,
        three_body=False,
        representation_dim=160,
        reference="Formation energies (eV/atom) of the original implementation in "
        "reference/megnet_eform_reference.csv, to 1e-3 eV/atom.",
    )

    def __init__(self, pretrained_root: Path, device: str = "cpu") -> None:
        super().__init__(pretrained_root, device)
        self.model = load_pretrained_megnet(self.model_dir).to(self.device)

    @property
    def module(self) -> nn.Module:
        """The MEGNet model."""
        return self.model

    def outputs(self, batch: MatglBatch) -> tuple[Tensor, Tensor]:
        """Formation energies (eV/atom) and the readout vectors of ``batch``."""
        raw = self.model(g=batch.graph, state_attr=batch.state_attr).reshape(-1)
        return raw * EFORM_STD + EFORM_MEAN, self.model.feature_dict["readout"]
