"""What the matgl backbones share: their mirror folder, batches of matgl's own graphs, and the
differentiable energy of a matgl ``Potential``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matgl.apps.pes import Potential
from matgl.ext.pymatgen import Structure2Graph
from pymatgen.core import Structure
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from kappaflow.backbones.base import Backbone


@dataclass(frozen=True)
class MatglBatch:
    """Structures as one PyG batch of ``Structure2Graph`` graphs, positions and image shifts set."""

    graph: Batch
    state_attr: Tensor  #: ``(b, n_state)``, the converter's default state attributes
    n_atoms: Tensor  #: ``(b,)``


class MatglBackbone(Backbone):
    """A backbone stored in matgl's format in ``pretrained_root / spec.source``."""

    def __init__(self, pretrained_root: Path, device: str = "cpu") -> None:
        """Check that the folder exists; subclasses load the model from ``self.model_dir``.

        Raises:
            FileNotFoundError: if ``model.json`` is missing.
        """
        self.model_dir = Path(pretrained_root) / self.spec.source
        if not (self.model_dir / "model.json").is_file():
            raise FileNotFoundError(f"{self.spec.name}: {self.model_dir / 'model.json'} not found")
        self.device = torch.device(device)
        self.converter = Structure2Graph(element_types=list(self.spec.elements), cutoff=self.spec.cutoff)

    def collate(self, structures: Sequence[Structure]) -> MatglBatch:
        """The matgl graphs of ``structures`` on the backbone's device."""
        graphs, lattices, states = zip(*(self.converter.get_graph(s) for s in structures), strict=True)
        graph = Batch.from_data_list(list(graphs)).to(self.device)
        lattice = torch.cat(lattices).to(self.device)
        graph.pos = (graph.frac_coords.unsqueeze(-1) * lattice[graph.batch]).sum(dim=1)
        edge_lattice = lattice[graph.batch[graph.edge_index[0]]]
        graph.pbc_offshift = (graph.pbc_offset.unsqueeze(-1) * edge_lattice).sum(dim=1)
        state_attr = torch.as_tensor(np.stack(states), dtype=lattice.dtype, device=self.device)
        n_atoms = torch.tensor([len(s) for s in structures], device=self.device)
        return MatglBatch(graph, state_attr, n_atoms)


def potential_outputs(
    potential: Potential, batch: MatglBatch, atom_features: Callable[[], Tensor]
) -> tuple[Tensor, Tensor]:
    """A matgl ``Potential``'s energy per atom (eV/atom) of ``batch``, and the mean over each structure's atoms
    of the per-atom features its readout saw (``atom_features``: read them after the forward pass).

    ``Potential.forward`` runs its model under ``torch.no_grad`` unless it computes forces, so this repeats
    its energy (model output scaled, plus the element references; both potentials here have no
    repulsion term) on the positions and image shifts :meth:`MatglBackbone.collate` set.
    """
    energy = potential.data_std * potential.model(g=batch.graph) + potential.data_mean
    if potential.element_refs is not None:
        energy = energy + potential.element_refs(batch.graph).reshape(-1)
    pooled = scatter(atom_features(), batch.graph.batch, dim=0, reduce="mean")
    return energy / batch.n_atoms, pooled
