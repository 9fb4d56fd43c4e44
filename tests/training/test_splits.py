"""Splits: deterministic, disjoint, row-order independent; MIX composition; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from kappaflow.training.data import read_graphs, split_set
from kappaflow.training.splits import SplitError, split_indices

IDS = np.array([f"mp-{i}" for i in range(50)], dtype=object)


def test_split_deterministic_disjoint_complete():
    train, val = split_indices(IDS, seed=3, val_fraction=0.2)
    train2, val2 = split_indices(IDS, seed=3, val_fraction=0.2)
    assert np.array_equal(train, train2) and np.array_equal(val, val2)
    assert len(train) == 40 and len(val) == 10
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(50))
    assert not np.array_equal(val, split_indices(IDS, seed=4, val_fraction=0.2)[1])


def test_split_independent_of_row_order():
    perm = np.random.default_rng(0).permutation(len(IDS))
    _, val = split_indices(IDS, seed=7, val_fraction=0.2)
    _, val_perm = split_indices(IDS[perm], seed=7, val_fraction=0.2)
    assert set(IDS[val]) == set(IDS[perm][val_perm])


def test_dgl_sizes():
    train, val = split_indices(IDS[:19], seed=1, val_fraction=0.2)
    assert (len(train), len(val)) == (15, 4)  # int(19 * 0.8) = 15


@pytest.mark.parametrize("n", [0, 1, 3, 4])
def test_too_small_to_split(n):
    with pytest.raises(SplitError, match="too small to split"):
        split_indices(IDS[:n], seed=1, val_fraction=0.2, name="tiny")


def test_duplicate_ids():
    with pytest.raises(SplitError, match="not unique"):
        split_indices(np.array(["a", "a", "b", "c", "d", "e"], dtype=object), 1, 0.5)


def test_mix_splits_each_dataset_separately(graph_paths):
    graphs = read_graphs({k: graph_paths[k] for k in ("dataset1", "dataset2")})
    mix = split_set("MIX", graphs, seed=2, val_fraction=0.2)
    d1 = split_set("Dataset1", graphs, seed=2, val_fraction=0.2)
    d2 = split_set("Dataset2", graphs, seed=2, val_fraction=0.2)
    assert list(mix.val.ids) == list(d1.val.ids) + list(d2.val.ids)
    assert list(mix.train.ids) == list(d1.train.ids) + list(d2.train.ids)
    assert set(mix.val.datasets) == {"dataset1", "dataset2"}


def test_missing_graph_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="graph file for 'aflow' not found"):
        read_graphs({"aflow": tmp_path / "nope.parquet"})
