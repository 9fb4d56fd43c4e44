"""Quotient graphs: one node per class of atoms the network cannot tell apart, weighted by class size.

MEGNet updates an edge from its own features, its two end nodes and the graph state, and a node
from the mean over its incoming edges. Atoms that end with the same colour under Weisfeiler–Lehman
colour refinement (start: graph and element; refine by the multiset of (source colour, edge length)
over incoming edges, until stable), such as symmetry-equivalent atoms, therefore carry equal
features in every block, and so do edges with equal (source colour, destination colour, length).
The quotient graph keeps the first atom of each colour and the edges into it, each edge's source
replaced by its colour's kept atom; edges that then coincide (same source, destination and length,
e.g. one neighbour's periodic images) become one row with a count. Every node and edge is weighed
by how many of the full graph it stands for, so the node means, graph means and Set2Set readouts of
:mod:`kappaflow.megnet_forward`, hence outputs and gradients, are the full graph's. The mirror's
graphs keep 1 edge in 6.4 (AFLOW), 6.8 (Dataset1), 4.7 (Dataset2) and 3.0 (screening set).

Symmetry-equivalent edges differ in the last float32 bits of their length: :func:`symmetrized`
first gives lengths within ``tolerance`` of each other (per graph, in sorted order) their smallest
value. That moves the model's output by ≈1e-6 (tested on mirror structures; over the screening
set's predictions, median 5e-7 and at most 1e-4 relative); the quotient of a symmetrized set is
exact. Image offsets (``pbc_offset``) of the quotient's edges are those of the original source
atoms: geometry is read from ``edge_length``.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from kappaflow.graphs import ELEMENT_TYPES, GraphSet, pointers

log = logging.getLogger(__name__)

#: Edge lengths closer than this (Å, per graph) count as equal.
LENGTH_TOLERANCE = 1.0e-5


def _group(*keys: np.ndarray) -> np.ndarray:
    """Dense group ids (0, 1, ...) of the rows with equal ``keys`` (last key sorts first)."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys)
    new = np.zeros(len(order), dtype=bool)
    new[0] = True
    for key in keys:
        sorted_key = key[order]
        new[1:] |= sorted_key[1:] != sorted_key[:-1]
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids


def _snap(length: np.ndarray, edge_graph: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per graph, runs of sorted lengths with steps ≤ ``tolerance`` become one: (run id, run's smallest length)."""
    order = np.lexsort((length, edge_graph))
    sorted_length, sorted_graph = length[order], edge_graph[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(sorted_length) > tolerance) | (sorted_graph[1:] != sorted_graph[:-1])
    run = np.cumsum(new) - 1
    run_id = np.empty(len(order), dtype=np.int64)
    run_id[order] = run
    return run_id, sorted_length[new][run_id]


def symmetrized(graphs: GraphSet, tolerance: float = LENGTH_TOLERANCE) -> GraphSet:
    """``graphs`` with ``edge_length`` set and lengths within ``tolerance`` (per graph) made equal."""
    _, _, edge_graph = graphs.global_edges()
    return dataclasses.replace(graphs, edge_length=_snap(graphs.edge_lengths(), edge_graph, tolerance)[1])


def _in_key(color: np.ndarray, src: np.ndarray, length_id: np.ndarray) -> np.ndarray:
    """Each edge's (source colour, length) as one integer."""
    return color[src] * (int(length_id.max()) + 1) + length_id


def _mix(key: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: a bijection of 64-bit words that scatters nearby keys (wrapping arithmetic)."""
    z = key.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _is_stable(color: np.ndarray, src: np.ndarray, dst: np.ndarray, length_id: np.ndarray) -> bool:
    """Whether every node has exactly its colour's first node's multiset of incoming (source colour, length)."""
    first = np.unique(color, return_index=True)[1][color]
    degree = np.bincount(dst, minlength=len(color))
    if not np.array_equal(degree, degree[first]):
        return False
    key = _in_key(color, src, length_id)
    order = np.lexsort((key, dst))
    sorted_key, sorted_dst = key[order], dst[order]
    start = np.concatenate([[0], np.cumsum(degree)])
    rank = np.arange(len(order)) - start[sorted_dst]
    return bool(np.array_equal(sorted_key, sorted_key[start[first[sorted_dst]] + rank]))


def stable_colors(
    node_graph: np.ndarray, node_type: np.ndarray, src: np.ndarray, dst: np.ndarray, length_id: np.ndarray
) -> np.ndarray:
    """Colour of every node after Weisfeiler–Lehman refinement over incoming edges (dense ids).

    Multisets are hashed as sums of 64-bit words (:func:`_mix`); the result is then checked exactly
    (:func:`_is_stable`). On a hash collision (never seen) every node keeps its own colour.
    """
    color = _group(node_type, node_graph * len(ELEMENT_TYPES))
    if len(src) == 0:
        return color
    while True:
        signature = np.zeros(len(color), dtype=np.uint64)
        np.add.at(signature, dst, _mix(_in_key(color, src, length_id)))  # wraps modulo 2**64
        refined = _group(signature, color)
        if refined.max() == color.max():
            break
        color = refined
    if not _is_stable(color, src, dst, length_id):
        log.warning("colour refinement: hash collision, graphs kept whole")
        return np.arange(len(color))
    return color


def quotient(graphs: GraphSet, tolerance: float = LENGTH_TOLERANCE) -> GraphSet:
    """The quotient graphs of ``graphs`` (module docstring), with their lengths, node and edge weights."""
    if graphs.node_weight is not None:
        return graphs
    src, dst, edge_graph = graphs.global_edges()
    length_id, length = _snap(graphs.edge_lengths(), edge_graph, tolerance)
    node_graph = np.repeat(np.arange(len(graphs)), np.diff(graphs.node_ptr))
    color = stable_colors(node_graph, graphs.node_type, src, dst, length_id)
    first = np.unique(color, return_index=True)[1]
    class_size = np.bincount(color).astype(np.float32)
    kept = np.zeros(len(color), dtype=bool)
    kept[first] = True
    nodes, into_kept = np.flatnonzero(kept), np.flatnonzero(kept[dst])
    new_index = np.cumsum(kept) - 1
    new_src, new_dst = new_index[first[color[src[into_kept]]]], new_index[dst[into_kept]]
    # Parallel edges (same kept source, destination and length) carry equal features: one row each,
    # counted. Grouped by destination first, so each graph's rows stay contiguous.
    row = _group(length_id[into_kept], new_src, new_dst)
    picked = np.unique(row, return_index=True)[1]
    edges = into_kept[picked]
    count = np.bincount(row).astype(np.float32)
    node_ptr = pointers(np.bincount(node_graph[nodes], minlength=len(graphs)))
    edge_ptr = pointers(np.bincount(edge_graph[edges], minlength=len(graphs)))
    edge_index = np.stack([new_src[picked], new_dst[picked]]) - node_ptr[:-1][edge_graph[edges]]
    return dataclasses.replace(
        graphs,
        node_type=graphs.node_type[nodes], frac_coords=graphs.frac_coords[nodes], pos=graphs.pos[nodes],
        edge_index=edge_index.astype(np.int32), pbc_offset=graphs.pbc_offset[edges],
        node_ptr=node_ptr, edge_ptr=edge_ptr, edge_length=length[edges], edge_count=count,
        node_weight=class_size[color[nodes]], edge_weight=class_size[color[dst[edges]]] * count,
    )  # fmt: skip
