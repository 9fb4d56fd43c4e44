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

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from pymatgen.core import Element, Lattice, Structure
from pymatgen.optimization.neighbors import find_points_in_spheres
from tqdm import tqdm

#: MEGNet's element vocabulary (89 types: H–Bi and Ac–Pu); node_type is the index into it. Equal to
#: ``matgl.config.DEFAULT_ELEMENTS`` (tested), spelled out because importing matgl takes seconds.
ELEMENT_TYPES: tuple[str, ...] = tuple(Element.from_Z(z).symbol for z in (*range(1, 84), *range(89, 95)))
_Z_TO_NODE_TYPE = np.full(119, -1, dtype=np.int64)
for _index, _symbol in enumerate(ELEMENT_TYPES):
    _Z_TO_NODE_TYPE[Element(_symbol).Z] = _index
SUPPORTED_Z = frozenset(int(z) for z in np.flatnonzero(_Z_TO_NODE_TYPE >= 0))

log = logging.getLogger(__name__)

NUMERICAL_TOL = 1.0e-8
T = TypeVar("T")
_PBC = np.array([1, 1, 1], dtype=np.int64)
#: Fewest graphs per worker process: a pool costs ≈0.1 s (start, pickling the edges back), the time
#: one process takes for ≈2,000 graphs, so two processes only pay off from about 4,000 graphs.
GRAPHS_PER_PROCESS = 4000

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


def cartesian_coords(frac_coords: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Cartesian coordinates bit-for-bit as pymatgen's ``Structure.cart_coords`` computes them.

    pymatgen converts site by site; a matrix product (BLAS) rounds differently in the last bit,
    which can move a pair across the cutoff. ``lattice`` is (3, 3) or one (3, 3) per site.
    """
    lattice = np.broadcast_to(lattice, (len(frac_coords), 3, 3))
    cart = frac_coords[:, 0, None] * lattice[:, 0] + frac_coords[:, 1, None] * lattice[:, 1]
    return np.ascontiguousarray(cart + frac_coords[:, 2, None] * lattice[:, 2])


def _search(cart: np.ndarray, lattice: np.ndarray, cutoff: float) -> tuple[np.ndarray, ...]:
    """``find_points_in_spheres`` as matgl calls it, self-pairs excluded: src, dst, images, distances."""
    src, dst, images, dist = find_points_in_spheres(
        cart, cart, r=cutoff, pbc=_PBC, lattice=lattice, tol=NUMERICAL_TOL
    )
    keep = (src != dst) | (dist > NUMERICAL_TOL)
    return src[keep], dst[keep], images[keep], dist[keep]


def neighbor_list(
    lattice: np.ndarray, frac_coords: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Directed neighbour pairs within ``cutoff`` (src, dst, images, distances), self-pairs excluded.

    The same search, with the same arguments, as matgl's ``Structure2Graph``.
    """
    lattice = np.ascontiguousarray(lattice, dtype=float)
    cart = cartesian_coords(np.asarray(frac_coords, dtype=float), lattice)
    return _search(cart, lattice, cutoff)


def neighbor_edges(
    lattice: np.ndarray, frac_coords: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges within ``cutoff`` (src, dst, images) exactly as matgl's Structure2Graph finds them."""
    src, dst, images, _ = neighbor_list(lattice, frac_coords, cutoff)
    return src.astype(np.int32), dst.astype(np.int32), images.astype(np.int16)


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


def write_structure_table(records: Sequence[dict[str, object]], path: str | Path) -> None:
    """Write validated structure records (``STRUCTURE_SCHEMA``) to parquet."""
    table = pa.Table.from_pylist(list(records), schema=STRUCTURE_SCHEMA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _edges_of_chunk(
    lattice: np.ndarray, frac_coords: np.ndarray, n_nodes: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges of consecutive graphs given as flat arrays: src, dst, images (int32/int32/int16), counts."""
    cart = cartesian_coords(frac_coords, np.repeat(lattice, n_nodes, axis=0))
    node_ptr = pointers(n_nodes)
    parts = [
        _search(cart[node_ptr[i] : node_ptr[i + 1]], lattice[i], cutoff)[:3] for i in range(len(n_nodes))
    ]
    counts = np.fromiter((len(part[0]) for part in parts), dtype=np.int64, count=len(parts))
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3), np.int16), counts
    src, dst, images = (np.concatenate([part[k] for part in parts]) for k in range(3))
    return src.astype(np.int32), dst.astype(np.int32), images.astype(np.int16), counts


def _chunks(n_graphs: int, n_chunks: int) -> list[tuple[int, int]]:
    """Split ``range(n_graphs)`` into at most ``n_chunks`` contiguous (start, stop) ranges (at least one)."""
    bounds = np.linspace(0, n_graphs, max(1, min(n_chunks, n_graphs)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


class _InProcess:
    """Executor stand-in that maps in the calling process."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    @staticmethod
    def map(fn: Callable[..., T], *iterables: Iterable[Any], chunksize: int = 1) -> Iterator[T]:
        """Like ``Executor.map``, serially."""
        return map(fn, *iterables)


def process_pool(workers: int) -> ProcessPoolExecutor | _InProcess:
    """A process pool with ``workers`` processes, or an in-process stand-in when ``workers`` ≤ 1."""
    return ProcessPoolExecutor(workers) if workers > 1 else _InProcess()


def _list_column(values: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    """An Arrow list column from flat values and row offsets."""
    if offsets[-1] >= np.iinfo(np.int32).max:
        raise ValueError("graph table too large for 32-bit list offsets; featurize it in parts")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def featurize_table(table: pa.Table, cutoff: float, workers: int = 1, progress: bool = False) -> pa.Table:
    """Add the edge columns to a structure table (``STRUCTURE_SCHEMA`` → ``GRAPH_SCHEMA``).

    Args:
        table: validated structures.
        cutoff: neighbour cutoff (Å), stored in the table metadata.
        workers: processes at most; chunks of graphs are featurized in parallel, with at least
            ``GRAPHS_PER_PROCESS`` graphs per process.
        progress: show a tqdm progress bar (on stderr) over the chunks.
    """
    table = table.select(STRUCTURE_SCHEMA.names).cast(STRUCTURE_SCHEMA)
    frac, n_nodes = _flat(table.column("frac_coords"), np.float64)
    lattice = _flat(table.column("lattice"), np.float64)[0].reshape(-1, 3, 3)
    frac = frac.reshape(-1, 3)
    if (n_nodes % 3).any():
        raise ValueError("frac_coords must hold 3 values per site")
    n_nodes //= 3
    node_ptr = pointers(n_nodes)
    workers = max(1, min(workers, len(table) // GRAPHS_PER_PROCESS))
    chunks = _chunks(len(table), 8 * workers)
    args = [(lattice[a:b], frac[node_ptr[a] : node_ptr[b]], n_nodes[a:b], cutoff) for a, b in chunks]
    bar = tqdm(total=len(table), desc="featurize", unit="graph", disable=not progress, mininterval=1.0)
    results = []
    with bar, process_pool(workers) as pool:
        for result in pool.map(_edges_of_chunk, *zip(*args)):
            results.append(result)
            bar.update(len(result[3]))
    src, dst, images, counts = (np.concatenate([result[k] for result in results]) for k in range(4))
    offsets = pointers(counts)
    columns = {
        "edge_src": _list_column(src, offsets),
        "edge_dst": _list_column(dst, offsets),
        "edge_images": _list_column(images.reshape(-1), 3 * offsets),
    }
    for name, column in columns.items():
        table = table.append_column(GRAPH_SCHEMA.field(name), column)
    return table.replace_schema_metadata({"kappaflow.cutoff": str(cutoff)})


def featurize_file(
    source: str | Path, destination: str | Path, cutoff: float, workers: int = 1, progress: bool = False
) -> int:
    """Featurize ``results/data/<dataset>.parquet`` into ``results/graphs/<dataset>.parquet``; rows written."""
    table = featurize_table(pq.read_table(source), cutoff, workers=workers, progress=progress)
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, destination)
    n_edges = pc.sum(pc.list_value_length(table.column("edge_src"))).as_py() or 0
    log.info("%s: %d graphs, %d directed edges (cutoff %g Å)", destination, len(table), n_edges, cutoff)
    return len(table)


@dataclass
class GraphBatch:
    """A batch of graphs in the layout ``matgl.models.MEGNet.forward`` reads.

    A batch of quotient graphs (:mod:`kappaflow.quotient`) also holds each edge's length (its
    ``pos``/``pbc_offshift`` no longer give it) and how many nodes and edges of the full graph each
    row stands for; the model weighs its graph means and readouts by them.
    """

    node_type: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    pbc_offshift: torch.Tensor
    batch: torch.Tensor
    state_attr: torch.Tensor
    num_graphs: int
    edge_length: torch.Tensor | None = None  #: ``(num_edges,)`` Å; ``None``: from ``pos`` and ``pbc_offshift``
    node_weight: torch.Tensor | None = None  #: ``(num_nodes,)`` nodes each row stands for; ``None``: 1
    edge_weight: torch.Tensor | None = None  #: ``(num_edges,)`` edges each row stands for; ``None``: 1
    edge_count: torch.Tensor | None = None  #: ``(num_edges,)`` messages each row stands for in its node's mean

    def to(self, device: torch.device | str) -> GraphBatch:
        """Copy to ``device``."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return GraphBatch(
            **{name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in values.items()}
        )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + length)`` for each pair, vectorised."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.arange(total, dtype=np.int64) + np.repeat(starts - ends + lengths, lengths)


def _image_shifts(vectors: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Cartesian ``vector @ lattice`` of each row, given each row's (3, 3) lattice."""
    return np.einsum("ei,eij->ej", vectors, lattices)


def _take(array: np.ndarray, rows: np.ndarray, axis: int = 0) -> np.ndarray:
    """``array`` at ``rows`` along ``axis`` (``np.take``: several times faster than fancy indexing)."""
    return np.take(array, rows, axis=axis)


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
    edge_index: np.ndarray  # (2, E) int32, local site indices (int64 in batches)
    pbc_offset: np.ndarray  # (E, 3) int16 image offsets (float32 in batches)
    node_ptr: np.ndarray  # (G + 1,) int64
    edge_ptr: np.ndarray  # (G + 1,) int64
    cutoff: float
    #: Quotient graphs only (:func:`kappaflow.quotient.quotient`), float32: edge lengths (E,), the
    #: nodes (N,) and edges (E,) of the full graph each row stands for, and the parallel edges of the
    #: quotient graph each edge row stands for (E,).
    edge_length: np.ndarray | None = None
    node_weight: np.ndarray | None = None
    edge_weight: np.ndarray | None = None
    edge_count: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def elements(self) -> list[set[str]]:
        """The element symbols of each graph."""
        return [{ELEMENT_TYPES[t] for t in self.node_type[start:stop]}
                for start, stop in zip(self.node_ptr[:-1], self.node_ptr[1:], strict=True)]

    def _parts(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, ...]:
        """Graph indices, their node and edge counts, and the node and edge rows they cover."""
        indices = np.asarray(indices, dtype=np.int64)
        node_starts, edge_starts = self.node_ptr[indices], self.edge_ptr[indices]
        n_nodes = self.node_ptr[indices + 1] - node_starts
        n_edges = self.edge_ptr[indices + 1] - edge_starts
        return indices, n_nodes, n_edges, _ranges(node_starts, n_nodes), _ranges(edge_starts, n_edges)

    def batch(self, indices: Sequence[int] | np.ndarray) -> GraphBatch:
        """Collate the graphs at ``indices`` into one :class:`GraphBatch`."""
        indices, n_nodes, n_edges, nodes, edges = self._parts(indices)
        graph_of_edge = np.repeat(np.arange(len(indices)), n_edges)
        edge_index = _take(self.edge_index, edges, axis=1) + (np.cumsum(n_nodes) - n_nodes)[graph_of_edge]
        images = _take(self.pbc_offset, edges).astype(np.float32)
        shifts = _image_shifts(images, _take(self.lattice, indices[graph_of_edge]))
        return GraphBatch(
            node_type=torch.from_numpy(_take(self.node_type, nodes)),
            pos=torch.from_numpy(_take(self.pos, nodes)),
            edge_index=torch.from_numpy(edge_index),
            pbc_offshift=torch.from_numpy(shifts),
            batch=torch.from_numpy(np.repeat(np.arange(len(indices)), n_nodes)),
            state_attr=torch.zeros((len(indices), 2), dtype=torch.float32),
            num_graphs=len(indices),
            **{name: torch.from_numpy(values) for name, values in self._quotient_rows(nodes, edges).items()},
        )

    def global_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each edge's source and destination as indices into all nodes of the set, and its graph (int64)."""
        edge_graph = np.repeat(np.arange(len(self)), np.diff(self.edge_ptr))
        offset = self.node_ptr[:-1][edge_graph]
        return self.edge_index[0] + offset, self.edge_index[1] + offset, edge_graph

    def edge_lengths(self) -> np.ndarray:
        """Length of every edge (Å, float32): ``edge_length`` when set, else from positions and images."""
        if self.edge_length is not None:
            return self.edge_length
        src, dst, edge_graph = self.global_edges()
        shifts = _image_shifts(self.pbc_offset.astype(np.float32), _take(self.lattice, edge_graph))
        vectors = _take(self.pos, dst) + shifts - _take(self.pos, src)
        return np.sqrt(np.einsum("ei,ei->e", vectors, vectors))

    def _quotient_arrays(self) -> dict[str, np.ndarray]:
        """The quotient-graph arrays this set holds (none for full graphs)."""
        arrays = {name: getattr(self, name) for name in _QUOTIENT_ARRAYS}
        return {name: values for name, values in arrays.items() if values is not None}

    def _quotient_rows(self, nodes: np.ndarray, edges: np.ndarray) -> dict[str, np.ndarray]:
        """The quotient-graph arrays at the node rows ``nodes`` (node weights) and edge rows ``edges``."""
        return {
            name: _take(values, nodes if name == "node_weight" else edges)
            for name, values in self._quotient_arrays().items()
        }

    def subset(self, indices: Sequence[int] | np.ndarray) -> GraphSet:
        """A new :class:`GraphSet` holding only the graphs at ``indices`` (in that order)."""
        indices, n_nodes, n_edges, nodes, edges = self._parts(indices)
        return GraphSet(
            ids=self.ids[indices],
            datasets=self.datasets[indices],
            formulas=self.formulas[indices],
            targets=self.targets[indices],
            node_type=_take(self.node_type, nodes),
            frac_coords=_take(self.frac_coords, nodes),
            pos=_take(self.pos, nodes),
            lattice=_take(self.lattice, indices),
            edge_index=_take(self.edge_index, edges, axis=1),
            pbc_offset=_take(self.pbc_offset, edges),
            node_ptr=pointers(n_nodes),
            edge_ptr=pointers(n_edges),
            cutoff=self.cutoff,
            **self._quotient_rows(nodes, edges),
        )

    @staticmethod
    def concat(parts: Sequence[GraphSet]) -> GraphSet:
        """Concatenate graph sets (e.g. Dataset1 ∪ Dataset2 = MIX)."""
        if not parts:
            raise ValueError("cannot concatenate zero graph sets")
        kinds = {tuple(part._quotient_arrays()) for part in parts}
        if len(kinds) > 1:
            raise ValueError("cannot concatenate full graphs with quotient graphs")

        def cat(name: str, axis: int = 0) -> np.ndarray:
            return np.concatenate([getattr(part, name) for part in parts], axis=axis)

        return GraphSet(
            ids=cat("ids"), datasets=cat("datasets"), formulas=cat("formulas"), targets=cat("targets"),
            node_type=cat("node_type"), frac_coords=cat("frac_coords"), pos=cat("pos"), lattice=cat("lattice"),
            edge_index=cat("edge_index", axis=1), pbc_offset=cat("pbc_offset"),
            node_ptr=pointers(np.concatenate([np.diff(part.node_ptr) for part in parts])),
            edge_ptr=pointers(np.concatenate([np.diff(part.edge_ptr) for part in parts])),
            cutoff=parts[0].cutoff,
            **{name: cat(name) for name in parts[0]._quotient_arrays()},
        )  # fmt: skip


_QUOTIENT_ARRAYS = ("edge_length", "node_weight", "edge_weight", "edge_count")


def pointers(counts: np.ndarray) -> np.ndarray:
    """CSR row pointers (length ``len(counts) + 1``) from per-row counts."""
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _flat(column: pa.ChunkedArray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Flattened values and per-row lengths of a list column."""
    combined = column.combine_chunks()
    lengths = combined.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    return combined.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False), lengths


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string column as a numpy object array."""
    return column.to_numpy(zero_copy_only=False).astype(object, copy=False)


def graph_set_from_table(table: pa.Table) -> GraphSet:
    """Build a :class:`GraphSet` from a graph table, vectorised over all rows."""
    metadata = table.schema.metadata or {}
    cutoff = float(metadata.get(b"kappaflow.cutoff", b"nan"))
    atomic_numbers, n_nodes = _flat(table.column("atomic_numbers"), np.int64)
    node_type = _Z_TO_NODE_TYPE[atomic_numbers]
    if (node_type < 0).any():
        raise ValueError("graph table holds an element outside MEGNet's element types")
    frac = _flat(table.column("frac_coords"), np.float32)[0].reshape(-1, 3)
    lattice = _flat(table.column("lattice"), np.float32)[0].reshape(-1, 3, 3)
    # Edges stay in their stored integer widths (a quarter of the memory of int64/float32 copies;
    # on VMs, where first-touching fresh pages is costly, that is most of the load time).
    src, n_edges = _flat(table.column("edge_src"), np.int32)
    dst, _ = _flat(table.column("edge_dst"), np.int32)
    images = _flat(table.column("edge_images"), np.int16)[0].reshape(-1, 3)
    node_graph = np.repeat(np.arange(len(n_nodes)), n_nodes)
    return GraphSet(
        ids=_strings(table.column("id")),
        datasets=_strings(table.column("dataset")),
        formulas=_strings(table.column("formula")),
        targets=table.column("target").to_numpy().astype(np.float64),
        node_type=node_type,
        frac_coords=frac,
        pos=_image_shifts(frac, _take(lattice, node_graph)),
        lattice=lattice,
        edge_index=np.stack([src, dst]),
        pbc_offset=images,
        node_ptr=pointers(n_nodes),
        edge_ptr=pointers(n_edges),
        cutoff=cutoff,
    )


def read_graph_set(path: str | Path) -> GraphSet:
    """Read ``results/graphs/<dataset>.parquet`` into a :class:`GraphSet`."""
    return graph_set_from_table(pq.read_table(path))
