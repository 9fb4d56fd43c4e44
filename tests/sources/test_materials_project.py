"""Materials Project structures: the batched online query, retries and clear failures, null rows, the
key, the mirror, the manifest."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pandas as pd
import pytest
from fake_servers import API_KEY, MIRROR, SUMMARY_PATH, FakeServer, static_server
from kappaflow.sources.checksums import row_sha256s, text_sha256
from kappaflow.sources.http import HttpSettings
from kappaflow.sources.materials_project import (
    COLUMNS,
    LABEL_COLUMNS,
    MANIFEST_COLUMNS,
    MaterialsProjectError,
    acquire_mp_dataset,
    mirror_structure_files,
    read_hq_labels,
)
from pymatgen.core import Structure

UNKNOWN = "mp-999999999"


def _labels(path: Path, ids: list[str]) -> Path:
    pd.DataFrame(
        {"mp_id": ids, "formula": [f"X{i}" for i in range(len(ids))], "ltc_wmk": [1.5] * len(ids)}
    ).to_csv(path, index=False)
    return path


def _online(endpoint: str, settings: HttpSettings) -> dict[str, object]:
    return {
        "mp_endpoint": endpoint,
        "timeout_s": settings.timeout_s,
        "retries": settings.retries,
        "backoff_s": settings.backoff_s,
    }


@pytest.mark.network
def test_online_one_batched_query_with_retries_and_null_rows(
    mp: FakeServer, tmp_path: Path, fast: HttpSettings, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ["mp-1000", "mp-10010", UNKNOWN, "mp-10044"]
    mp.inject(SUMMARY_PATH, "500", "sleep")
    log_file = tmp_path / "fetch.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            table = acquire_mp_dataset(
                "online",
                _labels(tmp_path / "hq.csv", ids),
                tmp_path / "d.parquet",
                tmp_path / "d.manifest.csv",
                online=_online(mp.url, fast),
            )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

    summary = mp.requests_for(SUMMARY_PATH)
    assert len(summary) == 3  # one query: a 500, a timeout, then the answer
    assert all(request.headers["x-api-key"] == API_KEY for request in summary)
    written = pd.read_parquet(tmp_path / "d.parquet")
    assert list(written.columns) == COLUMNS and list(written.mp_id) == ids
    assert written.structure.isna().tolist() == [False, False, True, False]
    structure = Structure.from_dict(json.loads(written.structure[0]))
    assert structure == Structure.from_dict(
        json.loads((MIRROR / "mp" / "structures" / "mp-1000.json").read_text())
    )
    assert f"d: {UNKNOWN} is not in the Materials Project" in caplog.text
    assert table.structure.isna().sum() == 1
    manifest = pd.read_csv(tmp_path / "d.manifest.csv", keep_default_na=False)
    assert list(manifest.mp_id) == ids and (manifest.structure_sha256 == "").tolist() == [
        False,
        False,
        True,
        False,
    ]
    for text in (caplog.text, log_file.read_text(), (tmp_path / "d.parquet").read_bytes().decode("latin-1")):
        assert API_KEY not in text


def _fail_online(endpoint: str, tmp_path: Path, settings: HttpSettings) -> MaterialsProjectError:
    """The error of an online acquisition of two ids that must fail."""
    with pytest.raises(MaterialsProjectError) as caught:
        acquire_mp_dataset(
            "online",
            _labels(tmp_path / "hq.csv", ["mp-1000", "mp-10010"]),
            tmp_path / "d.parquet",
            tmp_path / "d.manifest.csv",
            online=_online(endpoint, settings),
        )
    error = caught.value
    assert error.__cause__ is None and error.__suppress_context__, "no chained mp-api/requests traceback"
    assert "\n" not in str(error) and API_KEY not in str(error)
    assert not (tmp_path / "d.parquet").exists()
    return error


@pytest.mark.network
@pytest.mark.parametrize("path", ["/heartbeat", SUMMARY_PATH])
def test_online_server_errors_are_retried_then_one_clear_error(
    path: str, mp: FakeServer, tmp_path: Path, fast: HttpSettings
) -> None:
    mp.inject(path, *["500"] * 20)
    error = _fail_online(mp.url, tmp_path, fast)
    assert len(mp.requests_for(path)) == fast.retries + 1 > 1
    assert f"{mp.url}{path}" in str(error) and "500" in str(error)
    assert f"{fast.retries} retries" in str(error)


def test_online_closed_port_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fast: HttpSettings
) -> None:
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _fail_online(f"http://127.0.0.1:{port}", tmp_path, fast)
    assert str(error).startswith(f"Materials Project request failed: http://127.0.0.1:{port}/heartbeat: ")
    assert "cannot connect (Connection refused)" in str(error)
    assert "ConnectionError" not in str(error) and "HTTPConnection" not in str(error)


def test_online_without_key_says_where_it_looks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fast: HttpSettings
) -> None:
    monkeypatch.delenv("MP_API_KEY", raising=False)
    online = {"mp_endpoint": "http://127.0.0.1:9", "timeout_s": 0.1, "retries": 0, "backoff_s": 0}
    with pytest.raises(RuntimeError, match="MP_API_KEY environment variable"):
        acquire_mp_dataset(
            "online",
            _labels(tmp_path / "hq.csv", ["mp-1000"]),
            tmp_path / "d.parquet",
            tmp_path / "d.manifest.csv",
            online=online,
        )


@pytest.mark.network
def test_labels_from_url_normalise_bare_ids(fast: HttpSettings) -> None:
    csv = b"mp_id,formula,ltc_wmk\n2894,ScSnAu,7.09\nmp-3161,LiAlSi,5.9\n"
    with static_server({"/hq/dataset2.csv": csv}) as server:
        server.inject("/hq/dataset2.csv", "500")
        labels = read_hq_labels(f"{server.url}/hq/dataset2.csv", fast)
    assert list(labels.mp_id) == ["mp-2894", "mp-3161"]
    assert labels.ltc_wmk.tolist() == [7.09, 5.9]


def test_label_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("mp_id,ltc_wmk\nmp-1,1.0\n")
    with pytest.raises(ValueError, match=r"bad.csv: missing columns \['formula'\]"):
        read_hq_labels(bad)
    bad.write_text("mp_id,formula,ltc_wmk\nmp-1,A,1.0\n,B,2.0\n")
    with pytest.raises(ValueError, match=r"bad.csv: empty mp_id in data row\(s\) \[2\]"):
        read_hq_labels(bad)


def _mirror(labels: Path, out: Path) -> pd.DataFrame:
    """Acquire ``labels`` from the mirror (the structure files of its ids that exist) into ``out``."""
    files = mirror_structure_files(list(read_hq_labels(labels).mp_id), MIRROR / "mp" / "structures")
    return acquire_mp_dataset("mirror", labels, out / "d.parquet", out / "d.manifest.csv", mirror_files=files)


@pytest.mark.parametrize(("dataset", "rows"), [("dataset1", 95), ("dataset2", 143)])
def test_mirror(dataset: str, rows: int, tmp_path: Path) -> None:
    table = _mirror(MIRROR / "hq" / f"{dataset}.csv", tmp_path)
    assert len(table) == rows and table.structure.notna().all()
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == rows


def test_mirror_unknown_id_gives_a_null_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        table = _mirror(_labels(tmp_path / "hq.csv", ["mp-1000", UNKNOWN]), tmp_path)
    assert table.structure.isna().tolist() == [False, True]
    assert f"{UNKNOWN} is not in the mirror" in caplog.text


def test_mirror_manifest_checksums(tmp_path: Path) -> None:
    ids = ["mp-1000", UNKNOWN, "mp-10044"]
    table = _mirror(_labels(tmp_path / "hq.csv", ids), tmp_path)
    manifest = pd.read_csv(tmp_path / "d.manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS and list(manifest.mp_id) == ids
    assert list(manifest.label_sha256) == row_sha256s(table, LABEL_COLUMNS)
    json_text = (MIRROR / "mp" / "structures" / "mp-1000.json").read_text().strip()
    assert manifest.structure_sha256.tolist() == [text_sha256(json_text), "", manifest.structure_sha256[2]]
    assert len(manifest.structure_sha256[2]) == 64


def test_mirror_structure_files_lists_existing_files_once(tmp_path: Path) -> None:
    files = mirror_structure_files(["mp-1000", UNKNOWN, "mp-1000"], MIRROR / "mp" / "structures")
    assert files == [MIRROR / "mp" / "structures" / "mp-1000.json"]
