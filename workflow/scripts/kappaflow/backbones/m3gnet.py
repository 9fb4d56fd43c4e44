"""Pretrained M3GNets, patched back to the message directions their weights were trained with.

matgl 4.1.2 loads both M3GNet weights of the mirror without a warning, but computes them differently
from the matgl that trained them:

- the graph convolution sums node messages onto each edge's *source*; both models were trained
  summing onto the *destination* (DGL ``update_all``): :class:`DestinationM3GNetGraphConv`;
- the 2018 formation-energy weights (matgl of July 2023) were trained with a line graph whose rows
  were transposed: each bond received the three-body sum over the other bonds of its start atom,
  weighted with *its own* end atom and length: :class:`TransposedThreeBody`. The MatPES potential
  needs no three-body patch (its three-body block is almost switched off; the patch changes nothing).
"""

from __future__ import annotations

from pathlib import Path

import matgl
import torch
from matgl.apps.pes import Potential
from matgl.layers import ThreeBodyInteractions
from matgl.layers._graph_convolution import M3GNetGraphConv
from matgl.models import M3GNet
from torch import Tensor, nn
from torch_geometric.utils import scatter

from kappaflow.backbone import EFORM_MEAN, EFORM_STD, read_init_args
from kappaflow.backbones._matgl import MatglBackbone, MatglBatch, potential_outputs
from kappaflow.backbones.base import BackboneSpec
from kappaflow.graphs import ELEMENT_TYPES

#: Buffers that ``M3GNet-MP-2018.6.1-Eform/state.pt`` lacks; the constructor sets them from ``cutoff``.
_UNSTORED_BUFFERS = frozenset({"bond_expansion.rbf.cutoff", "basis_expansion.sbf.cutoff"})


class DestinationM3GNetGraphConv(M3GNetGraphConv):
    """M3GNet graph convolution whose node update sums messages onto each edge's destination."""

    def node_update_(
        self,
        edge_index: Tensor,
        edge_feat: Tensor,
        node_feat: Tensor,
        rbf: Tensor,
        u_per_edge: Tensor | None,
        num_nodes: int,
    ) -> Tensor:
        """Node update: gated message of each edge, summed over a node's incoming edges."""
        inputs = [node_feat[edge_index[0]], node_feat[edge_index[1]], edge_feat]
        if self.include_state:
            inputs.append(u_per_edge)
        message = self.node_update_func(torch.hstack(inputs)) * self.node_weight_func(rbf)
        return scatter(message, edge_index[1].long(), dim=0, dim_size=num_nodes, reduce="sum")


class TransposedThreeBody(ThreeBodyInteractions):
    """Three-body update of the July-2023 matgl that trained ``M3GNet-MP-2018.6.1-Eform``.

    Its triplets were transposed: bond ``a = i→j`` received, for every other bond ``b = i→k``,
    ``basis(r_a, θ_ab) · φ(v_j) · fc(r_a) fc(r_b)`` (its own end atom, not ``k``). In matgl 4.1.2's
    line graph, which lists both orders of every pair, that is receiving on row 1 with row 1's end atom.
    """

    def forward(
        self,
        edge_dst_atom: Tensor,
        line_edge_index: Tensor,
        n_triple_ij: Tensor,
        num_bonds: int,
        three_basis: Tensor,
        three_cutoff: Tensor,
        node_feat: Tensor,
        edge_feat: Tensor,
    ) -> Tensor:
        """Edge features plus the bond update of the transposed three-body sum."""
        receiver, other = line_edge_index[1].long(), line_edge_index[0].long()
        end_atoms = self.update_network_atom(node_feat)[edge_dst_atom[receiver].long()]
        weights = (three_cutoff[receiver] * three_cutoff[other]).unsqueeze(1)
        terms = (three_basis * end_atoms * weights).to(edge_feat.dtype)
        summed = scatter(terms, receiver, dim=0, dim_size=num_bonds, reduce="sum")
        return edge_feat + self.update_network_bond(summed)


def _use_destination_aggregation(model: M3GNet) -> None:
    """Switch every graph convolution of ``model`` to :class:`DestinationM3GNetGraphConv`, in place."""
    for layer in model.graph_layers:
        layer.conv.__class__ = DestinationM3GNetGraphConv


def load_m3gnet_eform(model_dir: Path, patched: bool = True) -> M3GNet:
    """``M3GNet-MP-2018.6.1-Eform`` from ``model.json`` + ``state.pt`` (tensors only), in eval mode.

    ``patched=False`` keeps stock matgl 4.1.2's conventions, only to show the discrepancy.

    Raises:
        RuntimeError: if ``state.pt`` misses a learned key or holds an unexpected one.
    """
    model = M3GNet(**read_init_args(model_dir))
    state = torch.load(Path(model_dir) / "state.pt", map_location="cpu", weights_only=True)
    state = {
        key.removeprefix("model.").replace("readout.set2set.lstm", "readout.lstm"): value
        for key, value in state.items()
    }
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) - _UNSTORED_BUFFERS:
        raise RuntimeError(f"{model_dir}: state.pt does not fit M3GNet: {result}")
    if patched:
        _use_destination_aggregation(model)
        for block in model.three_body_interactions:
            block.__class__ = TransposedThreeBody
    return model.eval()


def load_m3gnet_matpes(model_dir: Path, patched: bool = True) -> Potential:
    """``M3GNet-MatPES-PBE-v2025.1-PES`` as an energy-only matgl ``Potential`` in eval mode.

    ``patched=False`` keeps stock matgl 4.1.2's aggregation, only to show the discrepancy.
    """
    potential = matgl.load_model(str(model_dir))
    if patched:
        _use_destination_aggregation(potential.model)
    potential.calc_forces = potential.calc_stresses = False
    return potential.eval()


class M3GNetEform(MatglBackbone):
    """M3GNet formation-energy model (MP 2018.6.1), patched to its training-time conventions.

    Representation: the Set2Set readout of the last node features (64 → 128), the vector its
    output MLP sees (the model has no state features).
    """

    spec = BackboneSpec(
        name="m3gnet-2018-eform",
        description="M3GNet trained on MP 2018.6.1 formation energies (matgl, July 2023)",
        source="M3GNet-MP-2018.6.1-Eform",
        cutoff=5.0,
        elements=ELEMENT_TYPES,
        three_body=True,
        representation_dim=128,
        reference="Formation energies (eV/atom) within 0.05 eV/atom MAE of MEGNet's original-implementation "
        "values in reference/megnet_eform_reference.csv (both models have 0.02-0.03 eV/atom test error).",
    )

    def __init__(self, pretrained_root: Path, device: str = "cpu", *, patched: bool = True) -> None:
        super().__init__(pretrained_root, device)
        self.model = load_m3gnet_eform(self.model_dir, patched).to(self.device)

    @property
    def module(self) -> nn.Module:
        """The M3GNet model."""
        return self.model

    def outputs(self, batch: MatglBatch) -> tuple[Tensor, Tensor]:
        """Formation energies (eV/atom) and the Set2Set readouts of ``batch``."""
        raw = self.model(g=batch.graph).reshape(-1)
        return raw * EFORM_STD + EFORM_MEAN, self.model.feature_dict["readout"]


class M3GNetMatPES(MatglBackbone):
    """M3GNet universal potential trained on MatPES PBE, patched to destination aggregation.

    Representation: the last graph layer's node features (64), mean-pooled over the atoms; its
    readout is a per-atom MLP on these features.
    """

    spec = BackboneSpec(
        name="m3gnet-matpes-2025",
        description="M3GNet interatomic potential trained on MatPES PBE energies and forces (v2025.1)",
        source="M3GNet-MatPES-PBE-v2025.1-PES",
        cutoff=5.0,
        elements=ELEMENT_TYPES,
        three_body=True,
        representation_dim=64,
        reference="Total PBE energies per atom (eV/atom) within 0.15 eV/atom of approximate PBE values "
        "and within 0.1 eV/atom MAE of the patched TensorNet-MatPES (no runnable original here).",
    )

    def __init__(self, pretrained_root: Path, device: str = "cpu", *, patched: bool = True) -> None:
        super().__init__(pretrained_root, device)
        self.potential = load_m3gnet_matpes(self.model_dir, patched).to(self.device)

    @property
    def module(self) -> nn.Module:
        """The whole potential: the M3GNet model, its energy scale and its element references."""
        return self.potential

    def outputs(self, batch: MatglBatch) -> tuple[Tensor, Tensor]:
        """Energies per atom (eV/atom) and the pooled last node features of ``batch``."""
        model = self.potential.model
        return potential_outputs(
            self.potential, batch, lambda: model.feature_dict[f"gc_{model.n_blocks}"]["node_feat"]
        )
