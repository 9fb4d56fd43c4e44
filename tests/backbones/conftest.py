"""Structures of the offline mirror shared by the backbone tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

StructureLoader = Callable[[Sequence[str]], list[Structure]]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread in each backbone test module (restored after it): these batches are tiny,
    and on a busy 2-core machine a second thread that has to be scheduled for every operation makes
    them 10-50 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pretrained_root(mirror_dir: Path) -> Path:
    return mirror_dir / "pretrained"


@pytest.fixture(scope="session")
def load_structures(mirror_dir: Path) -> StructureLoader:
    """Mirror structures by mp-id."""
    folder = mirror_dir / "mp" / "structures"

    def load(mp_ids: Sequence[str]) -> list[Structure]:
        return [Structure.from_dict(json.loads((folder / f"{mp_id}.json").read_text())) for mp_id in mp_ids]

    return load


@pytest.fixture(scope="session")
def eform_reference(mirror_dir: Path) -> pd.DataFrame:
    """MEGNet's formation energies (original implementation) with each structure's number of sites."""
    reference = pd.read_csv(mirror_dir / "reference" / "megnet_eform_reference.csv")
    folder = mirror_dir / "mp" / "structures"
    n_sites = [len(json.loads((folder / f"{mp_id}.json").read_text())["sites"]) for mp_id in reference.mp_id]
    return reference.assign(n_sites=n_sites)


@pytest.fixture(scope="session")
def small_structures(eform_reference: pd.DataFrame, load_structures: StructureLoader) -> list[Structure]:
    """10 small, chemically varied mirror structures (3-8 sites: binaries, half-Heuslers, Ac compounds)."""
    rows = eform_reference[eform_reference.n_sites.between(3, 8)].iloc[::25].head(10)
    return load_structures(rows.mp_id)


@pytest.fixture(scope="session")
def americium_oxide() -> Structure:
    """Rock-salt AmO: americium is outside every backbone's element types."""
    return Structure(Lattice.cubic(4.9), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
