"""TensorNet-MatPES, patched back to the embedding direction its weights were trained with.

The weights (``@model_version 1``) were saved by matgl 2.0-2.1, whose ``TensorEmbedding`` summed
each edge's ``emb2([z_src, z_dst]) · {I, A, S}(r)`` onto the edge's *destination*. matgl 2.2 moved
the sum onto the *source* and 4.1.2 loads the old weights with only a version warning, so in
compounds each atom sees its neighbours' embedding pair swapped (MgO: -2.3 instead of -5.9 eV/atom).
:class:`DestinationTensorEmbedding` restores the trained direction; the interaction layers did not change.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matgl
from matgl.apps.pes import Potential
from matgl.layers._embedding import TensorEmbedding
from torch import Tensor, nn

from kappaflow.backbones._matgl import MatglBackbone, MatglBatch, potential_outputs
from kappaflow.backbones.base import BackboneSpec
from kappaflow.graphs import ELEMENT_TYPES


class DestinationTensorEmbedding(TensorEmbedding):
    """TensorNet embedding that sums edge messages onto each edge's destination node."""

    def forward(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        state_attr: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The stock forward, with :meth:`aggregate` pointed at ``edge_index[1]``."""
        self._destination = edge_index[1]
        try:
            return super().forward(z, edge_index, edge_attr, edge_weight, edge_vec, state_attr)
        finally:
            del self._destination

    def aggregate(
        self, msg: tuple[Tensor, Tensor, Tensor], index: Tensor, dim_size: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sum the messages onto the destinations (the stock forward passes the sources as ``index``)."""
        return super().aggregate(msg, self._destination, dim_size)


def load_tensornet_matpes(model_dir: Path, patched: bool = True) -> Potential:
    """``TensorNet-MatPES-PBE-v2025.1-PES`` as an energy-only matgl ``Potential`` in eval mode.

    ``patched=False`` keeps stock matgl 4.1.2's embedding, only to show the discrepancy.

    Raises:
        RuntimeError: if matgl built another embedding than the plain PyG ``TensorEmbedding``
            (e.g. the warp kernels of nvalchemi-toolkit-ops), which the patch does not cover.
    """
    with warnings.catch_warnings():  # the version the patch is for: 1 (matgl 2.0-2.1), expected 2
        warnings.filterwarnings("ignore", "Incompatible model version", UserWarning)
        potential = matgl.load_model(str(model_dir))
    embedding = potential.model.tensor_embedding
    if type(embedding) is not TensorEmbedding or potential.model._use_warp:
        raise RuntimeError(f"{model_dir}: unexpected TensorNet embedding {type(embedding).__name__}")
    if patched:
        embedding.__class__ = DestinationTensorEmbedding
    potential.calc_forces = potential.calc_stresses = False
    return potential.eval()


class TensorNetMatPES(MatglBackbone):
    """TensorNet universal potential trained on MatPES PBE, patched to destination embedding.

    Representation: its per-atom readout features (the output of its last linear layer, 128), the
    input of its per-atom energy MLP, mean-pooled over the atoms.
    """

    spec = BackboneSpec(
        name="tensornet-matpes-2025",
        description="TensorNet interatomic potential trained on MatPES PBE energies and forces (v2025.1)",
        source="TensorNet-MatPES-PBE-v2025.1-PES",
        cutoff=5.0,
        elements=ELEMENT_TYPES,
        three_body=False,
        representation_dim=128,
        reference="Total PBE energies per atom (eV/atom) of matgl 2.0.0 (PyG), which saved the weights, "
        "to 1e-4 eV/atom.",
    )

    def __init__(self, pretrained_root: Path, device: str = "cpu", *, patched: bool = True) -> None:
        super().__init__(pretrained_root, device)
        self.potential = load_tensornet_matpes(self.model_dir, patched).to(self.device)

    @property
    def module(self) -> nn.Module:
        """The whole potential: the TensorNet model, its energy scale and its element references."""
        return self.potential

    def outputs(self, batch: MatglBatch) -> tuple[Tensor, Tensor]:
        """Energies per atom (eV/atom) and the pooled readout features of ``batch``."""
        return potential_outputs(self.potential, batch, lambda: self.potential.model.feature_dict["readout"])
