"""Training and test sets from the graph parquet files, their splits, and batch iterators.

Graph files are read once per job into :class:`~kappaflow.graphs.GraphSet` (flat arrays); loaders
reduce them once to their quotient graphs (:mod:`kappaflow.quotient`, the same function on 1 edge
in 5 to 7 of the mirror's training sets) and collate batches from those arrays with :meth:`GraphSet.batch`, never
re-featurized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kappaflow.graphs import GraphSet, read_graph_set
from kappaflow.quotient import quotient
from kappaflow.protocol import SET_SOURCES
from kappaflow.training.splits import split_indices


@dataclass
class SplitSet:
    """The training and validation parts of one named set for one seed."""

    name: str
    train: GraphSet
    val: GraphSet


def check_targets(graphs: GraphSet, name: str) -> None:
    """Raise ``ValueError`` unless every κ is finite and non-negative."""
    bad = ~np.isfinite(graphs.targets) | (graphs.targets < 0)
    if bad.any():
        examples = ", ".join(map(str, graphs.ids[bad][:5]))
        raise ValueError(f"{name}: {int(bad.sum())} rows have a missing or negative κ (e.g. {examples})")


def read_graphs(paths: Mapping[str, str | Path]) -> dict[str, GraphSet]:
    """Read each graph parquet once (``{dataset key: path}``), with a clear error for a missing file."""
    graphs = {}
    for key, path in paths.items():
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"graph file for {key!r} not found: {path} (written by prepare.smk: results/graphs/{key}.parquet)"
            )
        graphs[key] = read_graph_set(path)
    return graphs


def split_set(name: str, graphs: Mapping[str, GraphSet], seed: int, val_fraction: float) -> SplitSet:
    """Split set ``name`` with ``seed``; MIX splits Dataset1 and Dataset2 separately, then concatenates."""
    trains, vals = [], []
    for key in SET_SOURCES[name]:
        if key not in graphs:
            raise KeyError(f"set {name} needs the graphs of {key!r}, which were not loaded")
        part = graphs[key]
        check_targets(part, key)
        train_idx, val_idx = split_indices(part.ids, seed, val_fraction, name=f"{name} ({key})")
        trains.append(part.subset(train_idx))
        vals.append(part.subset(val_idx))
    return SplitSet(name, GraphSet.concat(trains), GraphSet.concat(vals))


def load_train_set(
    name: str, paths: Mapping[str, str | Path], seed: int, val_fraction: float
) -> SplitSet:
    """Read the graph files that set ``name`` needs and split it (see :func:`split_set`)."""
    return split_set(name, read_graphs({key: paths[key] for key in SET_SOURCES[name]}), seed, val_fraction)


class BatchLoader:
    """Iterates ``(batch, κ)`` over ``n`` resident items (κ in W/mK, float32); ``make_batch`` collates the items
    of an index array.

    Unshuffled loaders collate every batch once and reuse them; shuffled ones draw the order of
    epoch ``k`` from ``default_rng([seed, k])`` and collate each batch anew. ``k`` counts the epochs this
    loader has handed out; it is :meth:`state_dict`, which :class:`kappaflow.training.module.LoaderState`
    stores in checkpoints and restores on resume, so a resumed run sees exactly the batches an
    uninterrupted one would.
    """

    def __init__(
        self, kappa: np.ndarray, make_batch: Callable[[np.ndarray], Any], batch_size: int, shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if len(kappa) == 0:
            raise ValueError(f"{type(self).__name__}: nothing to load")
        self.kappa = torch.as_tensor(np.asarray(kappa, dtype=np.float32))
        self.make_batch = make_batch
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epochs_done = 0
        self._cache: list[tuple[Any, torch.Tensor]] | None = None

    def __len__(self) -> int:
        return -(-len(self.kappa) // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Completed epochs (the shuffle position)."""
        return {"epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`."""
        self.epochs_done = int(state["epochs_done"])

    def _collate(self, order: np.ndarray) -> Iterator[tuple[Any, torch.Tensor]]:
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.make_batch(idx), self.kappa[torch.from_numpy(idx)]

    def _shuffled(self) -> Iterator[tuple[Any, torch.Tensor]]:
        order = np.random.default_rng([self.seed, self.epochs_done]).permutation(len(self.kappa))
        batches = self._collate(order)
        for _ in range(len(self) - 1):
            yield next(batches)
        # Counted when the last batch is handed out: Lightning stops at len(self) without asking
        # for more, and also creates (and drops after one batch) an iterator at setup.
        self.epochs_done += 1
        yield next(batches)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        if self.shuffle and len(self) > 1:
            return self._shuffled()
        if self._cache is None:
            self._cache = list(self._collate(np.arange(len(self.kappa))))
        return iter(self._cache)


class GraphLoader(BatchLoader):
    """A :class:`BatchLoader` of ``GraphBatch`` es over a :class:`GraphSet`, as quotient graphs collated from
    the flat arrays (a few vectorised gathers, no featurization)."""

    def __init__(self, graphs: GraphSet, batch_size: int, shuffle: bool = False, seed: int = 0) -> None:
        self.graphs = quotient(graphs) if len(graphs) else graphs
        super().__init__(graphs.targets, self.graphs.batch, batch_size, shuffle, seed)
