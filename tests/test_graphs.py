"""Graph featurization: a row read back is the graph matgl's Structure2Graph builds (up to edge order)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from kappaflow import graphs
from matgl.config import DEFAULT_ELEMENTS
from matgl.ext.pymatgen import Structure2Graph
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser

CUTOFF = 4.0


@pytest.fixture(scope="module")
def mirror_structures(mirror_dir: Path) -> list[tuple[str, Structure]]:
    """A spread sample of real mirror structures: every 100th AFLOW CIF and every 60th MP JSON."""
    cifs = sorted((mirror_dir / "aflow_agl" / "cif").glob("*.cif"))[::100]
    jsons = sorted((mirror_dir / "mp" / "structures").glob("*.json"))[::60]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = [(path.stem, CifParser(path).parse_structures(primitive=False)[0]) for path in cifs]
    structures += [(path.stem, Structure.from_dict(json.loads(path.read_text()))) for path in jsons]
    return structures


@pytest.fixture(scope="module")
def structure_table(mirror_structures, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graphs") / "structures.parquet"
    records = [
        {"id": name, "dataset": "user", "target": float(i + 1), **graphs.structure_to_record(structure)}
        for i, (name, structure) in enumerate(mirror_structures)
    ]
    graphs.write_structure_table(records, path)
    return path


def _edges(edge_index: np.ndarray, pbc_offset: np.ndarray) -> np.ndarray:
    """The (src, dst, offset) rows of a graph's edges, sorted: graphs compared up to the order of edges.

    Bonds of equal length may come out of the neighbour search in either order: the Cartesian
    coordinates can differ from pymatgen's in the last bit (seen on AVX-512 CPUs).
    """
    edges = np.column_stack([np.asarray(edge_index).T, np.asarray(pbc_offset).reshape(-1, 3)])
    edges = edges.astype(np.int64)
    return edges[np.lexsort(edges.T[::-1])]


def test_element_types_are_matgls() -> None:
    assert graphs.ELEMENT_TYPES == tuple(DEFAULT_ELEMENTS)
    assert len(graphs.SUPPORTED_Z) == 89


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip_equals_structure2graph(
    mirror_structures, structure_table: Path, tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphs, "GRAPHS_PER_PROCESS", 1)  # use the process pool even on a small sample
    out = tmp_path / "graphs.parquet"
    assert graphs.featurize_file(structure_table, out, CUTOFF, workers=workers) == len(mirror_structures)
    assert pq.read_schema(out).remove_metadata().equals(graphs.GRAPH_SCHEMA)
    graph_set = graphs.read_graph_set(out)
    assert graph_set.cutoff == CUTOFF
    converter = Structure2Graph(element_types=graphs.ELEMENT_TYPES, cutoff=CUTOFF)
    for index, (name, structure) in enumerate(mirror_structures):
        expected, lattice, _ = converter.get_graph(structure)
        got = graph_set.subset([index])
        assert got.ids[0] == name
        np.testing.assert_array_equal(
            _edges(got.edge_index, got.pbc_offset),
            _edges(expected.edge_index.numpy(), expected.pbc_offset.numpy()),
            err_msg=name,
        )
        np.testing.assert_array_equal(got.node_type, expected.node_type.numpy(), err_msg=name)
        np.testing.assert_array_equal(got.frac_coords, expected.frac_coords.numpy(), err_msg=name)
        np.testing.assert_array_equal(got.lattice, lattice.numpy(), err_msg=name)


def test_featurize_record_matches_table_path(mirror_structures) -> None:
    """The per-record helper and the vectorised table path give the same edges."""
    name, structure = mirror_structures[0]
    record = graphs.featurize_record({"id": name, **graphs.structure_to_record(structure)}, CUTOFF)
    expected, _, _ = Structure2Graph(element_types=graphs.ELEMENT_TYPES, cutoff=CUTOFF).get_graph(structure)
    np.testing.assert_array_equal(
        _edges(np.stack([record["edge_src"], record["edge_dst"]]), record["edge_images"]),
        _edges(expected.edge_index.numpy(), expected.pbc_offset.numpy()),
    )


def test_batch_offsets_edges(structure_table: Path, tmp_path: Path) -> None:
    out = tmp_path / "graphs.parquet"
    graphs.featurize_file(structure_table, out, CUTOFF)
    graph_set = graphs.read_graph_set(out)
    batch = graph_set.batch([2, 0])
    first, second = graph_set.subset([2]), graph_set.subset([0])
    n_first = len(first.node_type)
    np.testing.assert_array_equal(
        batch.edge_index.numpy(), np.concatenate([first.edge_index, second.edge_index + n_first], axis=1)
    )
    assert batch.num_graphs == 2
    np.testing.assert_array_equal(batch.batch.numpy(), np.repeat([0, 1], [n_first, len(second.node_type)]))


def test_empty_table(tmp_path: Path) -> None:
    source, out = tmp_path / "empty.parquet", tmp_path / "graphs.parquet"
    graphs.write_structure_table([], source)
    assert graphs.featurize_file(source, out, CUTOFF, workers=2) == 0
    assert len(graphs.read_graph_set(out)) == 0


def test_concat_then_subset_round_trips(structure_table: Path, tmp_path: Path) -> None:
    out = tmp_path / "graphs.parquet"
    graphs.featurize_file(structure_table, out, CUTOFF)
    graph_set = graphs.read_graph_set(out)
    head, tail = graph_set.subset(range(5)), graph_set.subset(range(5, len(graph_set)))
    joined = graphs.GraphSet.concat([head, tail])
    for name in (
        "node_type",
        "frac_coords",
        "pos",
        "lattice",
        "edge_index",
        "pbc_offset",
        "node_ptr",
        "edge_ptr",
    ):
        np.testing.assert_array_equal(getattr(joined, name), getattr(graph_set, name), err_msg=name)
    assert list(joined.ids) == list(graph_set.ids)
