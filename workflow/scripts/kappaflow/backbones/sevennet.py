"""SevenNet-0 (11 July 2024), the MPtrj-pretrained potential in the ``sevenn`` wheel (imported on use)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from kappaflow.backbones.base import Backbone, BackboneSpec
from kappaflow.graphs import ELEMENT_TYPES

#: The module of SevenNet-0 whose input is the representation: 128 scalar features per atom.
READOUT_MODULE = "reduce_input_to_hidden"
#: Keys of SevenNet's data dict (``sevenn._keys.NODE_FEATURE``, ``BATCH``, ``PRED_TOTAL_ENERGY``).
NODE_FEATURE, BATCH, TOTAL_ENERGY = "x", "batch", "inferred_total_energy"


class SevenNet0(Backbone):
    """SevenNet-0 (NequIP-style, MPtrj): energies and node features from one energy-only pass.

    The model is built without its force/stress module. Representation: the scalar node features
    (128) that enter its energy readout (``reduce_input_to_hidden``), mean-pooled over the atoms.
    """

    spec = BackboneSpec(
        name="sevennet-0",
        description="SevenNet-0 (11 July 2024) universal potential trained on MPtrj (sevenn package)",
        source="sevenn",
        cutoff=5.0,
        elements=ELEMENT_TYPES,
        three_body=False,
        representation_dim=128,
        reference="Total energies per atom (eV/atom) of the package's own SevenNetCalculator, "
        "to 1e-5 eV/atom.",
    )

    def __init__(self, device: str = "cpu") -> None:
        from sevenn import _keys
        from sevenn.util import load_checkpoint

        checkpoint = load_checkpoint("7net-0")
        self.model = checkpoint.build_model()
        self.model.delete_module_by_key("force_output")
        self.model.key_grad = None  # only force_output differentiated with respect to the edge vectors
        self.model.set_is_batch_data(True)
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.cutoff = float(checkpoint.config[_keys.CUTOFF])
        self._node_features: Tensor | None = None
        self.model._modules[READOUT_MODULE].register_forward_pre_hook(self._keep_node_features)

    def _keep_node_features(self, module: nn.Module, inputs: tuple[dict[str, Tensor]]) -> None:
        """Forward pre-hook of the readout module: remember the node features it receives."""
        self._node_features = inputs[0][NODE_FEATURE]

    @property
    def module(self) -> nn.Module:
        """The SevenNet model (without its force/stress module)."""
        return self.model

    def collate(self, structures: Sequence[Structure]) -> Batch:
        """SevenNet's own graphs of ``structures`` (as its calculator builds them), batched."""
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        graphs = [
            AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(AseAtomsAdaptor.get_atoms(s), self.cutoff))
            for s in structures
        ]
        return Batch.from_data_list(graphs).to(self.device)

    def outputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Energies per atom (eV/atom) and pooled readout-input node features of ``batch``.

        The model writes its intermediate results into the batch it is given, so it gets a shallow copy:
        ``batch`` stays reusable.
        """
        output = self.model(copy.copy(batch))
        node_features, self._node_features = self._node_features, None
        n_atoms = torch.bincount(output[BATCH], minlength=batch.num_graphs)
        energy = output[TOTAL_ENERGY].reshape(-1) / n_atoms
        pooled = scatter(node_features, output[BATCH], dim=0, dim_size=batch.num_graphs, reduce="mean")
        return energy, pooled
