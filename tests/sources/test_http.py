"""The retrying session: status, timeout and body retries, atomic downloads."""

from __future__ import annotations

import pytest
import requests
from fake_servers import static_server
from kappaflow.sources.http import HttpSettings, download, get_json, make_session

pytestmark = pytest.mark.network

BODY = b'{"answer": [1, 2, 3], "padding": "' + b"x" * 200 + b'"}'


@pytest.mark.parametrize("fault", ["500", "sleep", "cut", "badjson"])
def test_get_json_retries_then_succeeds(fault: str, fast: HttpSettings) -> None:
    with static_server({"/a.json": BODY}) as server:
        server.inject("/a.json", fault, fault)
        assert get_json(make_session(fast), f"{server.url}/a.json", fast)["answer"] == [1, 2, 3]
        assert len(server.requests_for("/a.json")) == 3


def test_persistent_500_raises_after_the_budget(fast: HttpSettings) -> None:
    with static_server({"/a.json": BODY}) as server:
        server.inject("/a.json", *["500"] * 10)
        with pytest.raises(requests.HTTPError, match="500"):
            get_json(make_session(fast), f"{server.url}/a.json", fast)
        assert len(server.requests_for("/a.json")) == fast.retries + 1


def test_client_errors_are_not_retried(fast: HttpSettings) -> None:
    with static_server({}) as server:
        with pytest.raises(requests.HTTPError, match="404"):
            get_json(make_session(fast), f"{server.url}/missing.json", fast)
        assert len(server.requests) == 1


def test_download_replaces_a_leftover_part_and_renames_atomically(tmp_path, fast: HttpSettings) -> None:
    dest = tmp_path / "x.cif"
    (tmp_path / "x.cif.part").write_bytes(b"half of a previous attem")
    with static_server({"/x.cif": BODY}) as server:
        download(make_session(fast), f"{server.url}/x.cif", dest, fast)
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "x.cif.part").exists()


def test_failed_download_leaves_no_finished_file(tmp_path, fast: HttpSettings) -> None:
    dest = tmp_path / "x.cif"
    with static_server({"/x.cif": BODY}) as server:
        server.inject("/x.cif", *["cut"] * 10)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            download(make_session(fast), f"{server.url}/x.cif", dest, fast)
    assert not dest.exists()
