"""Crystal graphs: structure → edge arrays → parquet → model-ready batches.

Parquet schema of ``results/graphs/<dataset>.parquet`` (one row per material)::

    id              string          material id (AFLOW entry or mp-id)
    dataset         string          aflow | dataset1 | dataset2 | screening | user
    formula         string          reduced formula
    target          float64         κL in W/mK (NaN when unknown, e.g. for prediction)
    lattice         list<float64>   3×3 lattice matrix, row-major (Å), 9 values
    atomic_numbers  list<int16>     Z of each site, n values
    frac_coords     list<float64>   fractional coordinates, row-major, 3n values
    edge_src        list<int32>     source site of each directed edge (m values)
    edge_dst        list<int32>     destination site of each directed edge (m values)
    edge_images     list<int16>     periodic image of the destination, row-major, 3m values

Edges are every ordered pair of sites (self-images included) closer than the cutoff, found with
pymatgen's ``find_points_in_spheres`` exactly as ``matgl.ext.pymatgen.Structure2Graph`` does, so a
row read back is the same graph matgl builds. The cutoff is stored in the file's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from matgl.config import DEFAULT_ELEMENTS
from pymatgen.core import Element, Lattice, Structure
from pymatgen.optimization.neighbors import find_points_in_spheres

#: MEGNet's element vocabulary (89 types); node_type is the index into it.
ELEMENT_TYPES: tuple[str, ...] = tuple(DEFAULT_ELEMENTS)
_Z_TO_NODE_TYPE = np.full(119, -1, dtype=np.int64)
for _index, _symbol in enumerate(ELEMENT_TYPES):
    _Z_TO_NODE_TYPE[Element(_symbol).Z] = _index
SUPPORTED_Z = frozenset(int(z) for z in np.flatnonzero(_Z_TO_NODE_TYPE >= 0))

NUMERICAL_TOL = 1.0e-8

STRUCTURE_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("formula", pa.string()),
    pa.field("target", pa.float64()),
    pa.field("lattice", pa.list_(pa.float64())),
    pa.field("atomic_numbers", pa.list_(pa.int16())),
    pa.field("frac_coords", pa.list_(pa.float64())),
]
#: Schema of validated structure tables (``results/data/<dataset>.parquet``).
STRUCTURE_SCHEMA = pa.schema(STRUCTURE_FIELDS)
#: Schema of graph tables (``results/graphs/<dataset>.parquet``).
GRAPH_SCHEMA = pa.schema(
    [
        *STRUCTURE_FIELDS,
        pa.field("edge_src", pa.list_(pa.int32())),
        pa.field("edge_dst", pa.list_(pa.int32())),
        pa.field("edge_images", pa.list_(pa.int16())),
    ]
)


def structure_to_record(structure: Structure) -> dict[str, object]:
    """Array form of a structure (the ``STRUCTURE_SCHEMA`` structure columns)."""
    return {
        "formula": structure.composition.reduced_formula,
        "lattice": structure.lattice.matrix.reshape(-1).tolist(),
        "atomic_numbers": [site.specie.Z for site in structure],
        "frac_coords": structure.frac_coords.reshape(-1).tolist(),
    }


def record_to_structure(record: dict[str, object]) -> Structure:
    """Rebuild a pymatgen structure from its array form."""
    lattice = np.asarray(record["lattice"], dtype=float).reshape(3, 3)
    coords = np.asarray(record["frac_coords"], dtype=float).reshape(-1, 3)
    return Structure(Lattice(lattice), [int(z) for z in record["atomic_numbers"]], coords)


def neighbor_edges(
    lattice: np.ndarray, frac_coords: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges within ``cutoff`` (src, dst, images) exactly as matgl's Structure2Graph finds them."""
    lattice = np.ascontiguousarray(lattice, dtype=float)
    cart = np.ascontiguousarray(frac_coords @ lattice, dtype=float)
    src, dst, images, dist = find_points_in_spheres(
        cart, cart, r=cutoff, pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=NUMERICAL_TOL
    )
    keep = (src != dst) | (dist > NUMERICAL_TOL)
    return src[keep].astype(np.int32), dst[keep].astype(np.int32), images[keep].astype(np.int16)


def featurize_record(record: dict[str, object], cutoff: float) -> dict[str, object]:
    """Add the edge columns to one structure record."""
    lattice = np.asarray(record["lattice"], dtype=float).reshape(3, 3)
    frac = np.asarray(record["frac_coords"], dtype=float).reshape(-1, 3)
    src, dst, images = neighbor_edges(lattice, frac, cutoff)
    return {**record, "edge_src": src, "edge_dst": dst, "edge_images": images.reshape(-1)}


def write_graph_table(records: Sequence[dict[str, object]], path: str | Path, cutoff: float) -> None:
    """Write featurized records to parquet with the cutoff in the metadata."""
    table = pa.Table.from_pylist(list(records), schema=GRAPH_SCHEMA)
    table = table.replace_schema_metadata({"kappaflow.cutoff": str(cutoff)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@dataclass
class GraphBatch:
    """A batch of graphs in the layout ``matgl.models.MEGNet.forward`` reads."""

    node_type: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    pbc_offshift: torch.Tensor
    batch: torch.Tensor
    state_attr: torch.Tensor
    num_graphs: int

    def to(self, device: torch.device | str) -> GraphBatch:
        """Copy to ``device``."""
        return GraphBatch(
            *(getattr(self, name).to(device) for name in ("node_type", "pos", "edge_index", "pbc_offshift", "batch", "state_attr")),
            num_graphs=self.num_graphs,
        )


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, stop)`` for each pair, vectorised."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(stops - lengths.cumsum(), lengths)
    return np.arange(total, dtype=np.int64) + offsets


@dataclass
class GraphSet:
    """All graphs of a table in flat (CSR) arrays, ready for fast batching."""

    ids: np.ndarray
    datasets: np.ndarray
    formulas: np.ndarray
    targets: np.ndarray
    node_type: np.ndarray  # (N,) int64
    frac_coords: np.ndarray  # (N, 3) float32
    pos: np.ndarray  # (N, 3) float32, Cartesian
    lattice: np.ndarray  # (G, 3, 3) float32
    edge_index: np.ndarray  # (2, E) int64, local site indices
    pbc_offset: np.ndarray  # (E, 3) float32 image offsets
    pbc_offshift: np.ndarray  # (E, 3) float32 Cartesian image shifts
    node_ptr: np.ndarray  # (G + 1,)
    edge_ptr: np.ndarray  # (G + 1,)
    cutoff: float

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices: Sequence[int] | np.ndarray) -> GraphBatch:
        """Collate the graphs at ``indices`` into one :class:`GraphBatch`."""
        indices = np.asarray(indices, dtype=np.int64)
        node_starts, node_stops = self.node_ptr[indices], self.node_ptr[indices + 1]
        edge_starts, edge_stops = self.edge_ptr[indices], self.edge_ptr[indices + 1]
        nodes = _ranges(node_starts, node_stops)
        edges = _ranges(edge_starts, edge_stops)
        n_nodes = node_stops - node_starts
        n_edges = edge_stops - edge_starts
        new_node_start = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        shift = np.repeat(new_node_start, n_edges)
        edge_index = self.edge_index[:, edges] + shift
        graph_of_node = np.repeat(np.arange(len(indices)), n_nodes)
        return GraphBatch(
            node_type=torch.from_numpy(self.node_type[nodes]),
            pos=torch.from_numpy(self.pos[nodes]),
            edge_index=torch.from_numpy(edge_index),
            pbc_offshift=torch.from_numpy(self.pbc_offshift[edges]),
            batch=torch.from_numpy(graph_of_node),
            state_attr=torch.zeros((len(indices), 2), dtype=torch.float32),
            num_graphs=len(indices),
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> GraphSet:
        """A new :class:`GraphSet` holding only the graphs at ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        nodes = _ranges(self.node_ptr[indices], self.node_ptr[indices + 1])
        edges = _ranges(self.edge_ptr[indices], self.edge_ptr[indices + 1])
        n_nodes = self.node_ptr[indices + 1] - self.node_ptr[indices]
        n_edges = self.edge_ptr[indices + 1] - self.edge_ptr[indices]
        return GraphSet(
            ids=self.ids[indices],
            datasets=self.datasets[indices],
            formulas=self.formulas[indices],
            targets=self.targets[indices],
            node_type=self.node_type[nodes],
            frac_coords=self.frac_coords[nodes],
            pos=self.pos[nodes],
            lattice=self.lattice[indices],
            edge_index=self.edge_index[:, edges],
            pbc_offset=self.pbc_offset[edges],
            pbc_offshift=self.pbc_offshift[edges],
            node_ptr=np.concatenate([[0], np.cumsum(n_nodes)]),
            edge_ptr=np.concatenate([[0], np.cumsum(n_edges)]),
            cutoff=self.cutoff,
        )

    @staticmethod
    def concat(parts: Sequence[GraphSet]) -> GraphSet:
        """Concatenate graph sets (e.g. Dataset1 ∪ Dataset2 = MIX)."""
        if not parts:
            raise ValueError("cannot concatenate zero graph sets")
        node_ptr = [np.zeros(1, dtype=np.int64)]
        edge_ptr = [np.zeros(1, dtype=np.int64)]
        for part in parts:
            node_ptr.append(part.node_ptr[1:] + node_ptr[-1][-1])
            edge_ptr.append(part.edge_ptr[1:] + edge_ptr[-1][-1])
        def cat(name: str, axis: int = 0) -> np.ndarray:
            return np.concatenate([getattr(part, name) for part in parts], axis=axis)
        return GraphSet(
            ids=cat("ids"), datasets=cat("datasets"), formulas=cat("formulas"), targets=cat("targets"),
            node_type=cat("node_type"), frac_coords=cat("frac_coords"), pos=cat("pos"), lattice=cat("lattice"),
            edge_index=cat("edge_index", axis=1), pbc_offset=cat("pbc_offset"), pbc_offshift=cat("pbc_offshift"),
            node_ptr=np.concatenate(node_ptr), edge_ptr=np.concatenate(edge_ptr), cutoff=parts[0].cutoff,
        )


def _flat(column: pa.ChunkedArray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Flattened values and per-row lengths of a list column."""
    combined = column.combine_chunks()
    lengths = combined.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    return combined.flatten().to_numpy(zero_copy_only=False).astype(dtype), lengths


def graph_set_from_table(table: pa.Table) -> GraphSet:
    """Build a :class:`GraphSet` from a graph table, vectorised over all rows."""
    metadata = table.schema.metadata or {}
    cutoff = float(metadata.get(b"kappaflow.cutoff", b"nan"))
    atomic_numbers, n_nodes = _flat(table.column("atomic_numbers"), np.int64)
    node_type = _Z_TO_NODE_TYPE[atomic_numbers]
    if (node_type < 0).any():
        raise ValueError("graph table holds an element outside MEGNet's element types")
    frac, _ = _flat(table.column("frac_coords"), np.float64)
    lattice = _flat(table.column("lattice"), np.float64)[0].reshape(-1, 3, 3)
    src, n_edges = _flat(table.column("edge_src"), np.int64)
    dst, _ = _flat(table.column("edge_dst"), np.int64)
    images, _ = _flat(table.column("edge_images"), np.float64)
    frac = frac.reshape(-1, 3)
    images = images.reshape(-1, 3)
    node_graph = np.repeat(np.arange(len(n_nodes)), n_nodes)
    edge_graph = np.repeat(np.arange(len(n_edges)), n_edges)
    lattice32 = lattice.astype(np.float32)
    frac32 = frac.astype(np.float32)
    images32 = images.astype(np.float32)
    pos = np.einsum("ni,nij->nj", frac32, lattice32[node_graph])
    offshift = np.einsum("ei,eij->ej", images32, lattice32[edge_graph])
    return GraphSet(
        ids=np.asarray(table.column("id").to_pylist(), dtype=object),
        datasets=np.asarray(table.column("dataset").to_pylist(), dtype=object),
        formulas=np.asarray(table.column("formula").to_pylist(), dtype=object),
        targets=table.column("target").to_numpy().astype(np.float64),
        node_type=node_type,
        frac_coords=frac32,
        pos=pos.astype(np.float32),
        lattice=lattice32,
        edge_index=np.stack([src, dst]),
        pbc_offset=images32,
        pbc_offshift=offshift.astype(np.float32),
        node_ptr=np.concatenate([[0], np.cumsum(n_nodes)]),
        edge_ptr=np.concatenate([[0], np.cumsum(n_edges)]),
        cutoff=cutoff,
    )


def read_graph_set(path: str | Path) -> GraphSet:
    """Read ``results/graphs/<dataset>.parquet`` into a :class:`GraphSet`."""
    return graph_set_from_table(pq.read_table(path))
