"""Deterministic train/validation splits that depend only on (ids, seed, val_fraction)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Fewest rows allowed on either side of a split.
MIN_ROWS_PER_SIDE = 2


class SplitError(ValueError):
    """A dataset cannot be split as asked."""


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """``(n_train, n_val)`` with ``n_train = floor(n * (1 - val_fraction))`` (DGL's ``split_dataset`` rule)."""
    if not 0.0 < val_fraction < 1.0:
        raise SplitError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = math.floor(n * (1.0 - val_fraction) + 1e-9)
    return n_train, n - n_train


def split_indices(
    ids: Sequence[str] | np.ndarray, seed: int, val_fraction: float, name: str = "dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation parts of a dataset.

    The rows are ordered by id before shuffling, so the split of a material depends only on the
    set of ids, the seed and the fraction (not on row order). Both index arrays are sorted.

    Raises:
        SplitError: on duplicate ids or when either side would hold fewer than
            :data:`MIN_ROWS_PER_SIDE` rows.
    """
    ids = np.asarray(ids, dtype=object)
    n = len(ids)
    if len(set(ids.tolist())) != n:
        raise SplitError(f"{name}: ids are not unique, cannot split reproducibly")
    n_train, n_val = split_sizes(n, val_fraction)
    if min(n_train, n_val) < MIN_ROWS_PER_SIDE:
        raise SplitError(
            f"{name} has {n} rows: too small to split with val_fraction={val_fraction} "
            f"({n_train} train / {n_val} validation; at least {MIN_ROWS_PER_SIDE} needed on each side)"
        )
    order = np.argsort(ids.astype(str), kind="stable")
    shuffled = order[np.random.default_rng(seed).permutation(n)]
    return np.sort(shuffled[:n_train]), np.sort(shuffled[n_train:])
