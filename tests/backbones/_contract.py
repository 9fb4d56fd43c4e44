"""Checks every backbone must pass, called from each backbone's test module."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from pymatgen.core import Structure
from torch import Tensor

from kappaflow.backbones import Backbone
from kappaflow.backbones._matgl import MatglBatch

#: Largest change of a representation between batch sizes, relative to its largest entry.
BATCH_RTOL = 1e-5
#: Standard deviation of the noise added to every parameter to check that loading weights matters.
WEIGHT_NOISE = 1e-2


def check_representation(backbone: Backbone, structures: list[Structure]) -> None:
    """``represent`` gives finite float64 rows of ``representation_dim``, whatever the batch size."""
    one = backbone.represent(structures, batch_size=1)
    eight = backbone.represent(structures, batch_size=8)
    assert one.shape == (len(structures), backbone.spec.representation_dim)
    assert one.dtype == np.float64
    assert np.isfinite(one).all()
    assert np.abs(one - eight).max() <= BATCH_RTOL * np.abs(one).max()
    assert backbone.represent([]).shape == (0, backbone.spec.representation_dim)
    assert (one.std(axis=0) > 0).any(), "every structure got the same representation"


def check_rejects_unsupported(backbone: Backbone, unsupported: Structure, supported: Structure) -> None:
    """``supports`` names an element outside the backbone's types, and evaluating it fails clearly."""
    assert backbone.supports(supported) is None
    reason = backbone.supports(unsupported)
    assert reason is not None and "Am" in reason and backbone.spec.name in reason
    with pytest.raises(ValueError, match="Am"):
        backbone.energies([supported, unsupported])


def check_fine_tuning(backbone: Backbone, structures: list[Structure]) -> None:
    """``collate`` honours the graph spec, ``embed`` reproduces ``represent`` with gradients that reach the
    first layer and most of :attr:`Backbone.module`, and its weights survive a state-dict round trip.

    Leaves the backbone as it found it: original weights, no gradients.
    """
    saved = {key: value.clone() for key, value in backbone.state_dict().items()}
    try:
        batch = backbone.collate(structures)
        _check_graph_cutoff(backbone, batch, structures)
        _check_embedding_and_gradients(backbone, batch, structures)
        _check_state_round_trip(backbone, batch, saved)
    finally:
        backbone.load_state_dict(saved)
        backbone.module.zero_grad(set_to_none=True)


def _edge_lengths(batch: Any) -> Tensor:
    """Lengths (Å) of the directed edges of a collated batch: matgl, CHGNet (a list of its graphs) or SevenNet."""
    if isinstance(batch, MatglBatch):
        graph = batch.graph
        source, destination = graph.edge_index
        return (graph.pos[destination] - graph.pos[source] + graph.pbc_offshift).norm(dim=1)
    if isinstance(batch, list):
        return torch.cat([_crystal_graph_edge_lengths(graph) for graph in batch])
    return batch["edge_vec"].norm(dim=1)


def _crystal_graph_edge_lengths(graph: Any) -> Tensor:
    """Edge lengths of a CHGNet ``CrystalGraph``: neighbour in its image minus centre, in fractional coordinates."""
    frac, (centre, neighbour) = graph.atom_frac_coord, graph.atom_graph.T
    return ((frac[neighbour] + graph.neighbor_image - frac[centre]) @ graph.lattice).norm(dim=1)


def _check_graph_cutoff(backbone: Backbone, batch: Any, structures: list[Structure]) -> None:
    """The batch has exactly pymatgen's neighbour pairs within ``spec.cutoff``, none longer."""
    lengths = _edge_lengths(batch)
    cutoff = backbone.spec.cutoff
    pairs = sum(len(neighbours) for s in structures for neighbours in s.get_all_neighbors(cutoff))
    assert len(lengths) == pairs
    assert lengths.max().item() < cutoff


def _check_embedding_and_gradients(backbone: Backbone, batch: Any, structures: list[Structure]) -> None:
    """``embed`` equals ``represent``, and its gradients reach the first layer and most parameters."""
    embedded = backbone.embed(batch)
    expected = backbone.represent(structures)
    assert embedded.shape == (len(structures), backbone.spec.representation_dim)
    assert embedded.requires_grad
    _assert_close(embedded.detach().cpu().double().numpy(), expected)
    embedded.sum().backward()
    trainable = [(name, p.grad) for name, p in backbone.module.named_parameters() if p.requires_grad]
    assert all(grad is None or torch.isfinite(grad).all() for _, grad in trainable)
    reached = [name for name, grad in trainable if grad is not None and grad.abs().sum() > 0]
    assert trainable[0][0] in reached, f"no gradient reaches the first parameter, {trainable[0][0]}"
    assert len(reached) > len(trainable) / 2, f"only {len(reached)}/{len(trainable)} parameters get gradients"


def _check_state_round_trip(backbone: Backbone, batch: Any, saved: dict[str, Tensor]) -> None:
    """Noisy weights change the representation; ``saved``, also through ``torch.save``/``load``, restores it;
    a state missing a key is refused."""
    original = _embedding(backbone, batch)
    generator = torch.Generator().manual_seed(0)
    parameters = {name for name, _ in backbone.module.named_parameters()}
    noisy = {
        key: value + WEIGHT_NOISE * torch.randn(value.shape, generator=generator).to(value)
        if key in parameters
        else value
        for key, value in saved.items()
    }
    backbone.load_state_dict(noisy)
    assert not np.allclose(_embedding(backbone, batch), original, rtol=1e-3, atol=0)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    backbone.load_state_dict(torch.load(buffer, weights_only=True))
    _assert_close(_embedding(backbone, batch), original)
    with pytest.raises(RuntimeError, match="Missing key"):
        backbone.load_state_dict(dict(list(saved.items())[1:]))


def _embedding(backbone: Backbone, batch: Any) -> np.ndarray:
    """``embed`` of ``batch`` without gradients, float64."""
    with torch.no_grad():
        return backbone.embed(batch).cpu().double().numpy()


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """``actual`` equals ``expected`` to :data:`BATCH_RTOL` of its largest entry."""
    difference = np.abs(actual - expected).max()
    assert difference <= BATCH_RTOL * np.abs(expected).max(), f"off by {difference:.2e}"


def calculator_energies(calculator: object, structures: list) -> np.ndarray:
    """Energies per atom (eV/atom) that an ASE calculator (the backbone package's own) gives."""
    from pymatgen.io.ase import AseAtomsAdaptor

    energies = []
    for structure in structures:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy() / len(atoms))
    return np.asarray(energies)
