"""Fixtures of the data-acquisition tests: tiny retry budgets and the fake servers."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fake_servers import API_KEY, FakeServer, aflow_mirror_labels, aflow_server, mp_server
from kappaflow.sources.http import HttpSettings


@pytest.fixture
def fast() -> HttpSettings:
    """A timeout short beside the fake servers' stalls (3 s) yet long beside an answer on a loaded machine, three
    retries, near-zero backoff."""
    return HttpSettings(timeout_s=1.0, retries=3, backoff_s=0.001)


@pytest.fixture
def aflow_labels() -> pd.DataFrame:
    """Six mirror entries served by the fake AFLOW."""
    return aflow_mirror_labels(6)


@pytest.fixture
def aflow(aflow_labels: pd.DataFrame) -> Iterator[FakeServer]:
    """A fake AFLUX + CIF server; the fourth entry's CIF is malformed."""
    with aflow_server(aflow_labels, malformed={aflow_labels.entry[3]}) as server:
        yield server


@pytest.fixture
def mp(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A fake Materials Project expecting :data:`API_KEY`, which ``MP_API_KEY`` holds."""
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    with mp_server(API_KEY) as server:
        yield server
