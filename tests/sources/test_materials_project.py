"""Materials Project structures: the batched online query, null rows, the key, the mirror."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from fake_servers import API_KEY, MIRROR, SUMMARY_PATH, FakeServer, static_server
from kappaflow.sources.http import HttpSettings
from kappaflow.sources.materials_project import COLUMNS, acquire_mp_dataset, read_hq_labels
from pymatgen.core import Structure

UNKNOWN = "mp-999999999"


def _labels(path: Path, ids: list[str]) -> Path:
    pd.DataFrame(
        {"mp_id": ids, "formula": [f"X{i}" for i in range(len(ids))], "ltc_wmk": [1.5] * len(ids)}
    ).to_csv(path, index=False)
    return path


def _online(server: FakeServer, settings: HttpSettings) -> dict[str, object]:
    return {
        "mp_endpoint": server.url,
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
                "online", _labels(tmp_path / "hq.csv", ids), tmp_path / "d.parquet", online=_online(mp, fast)
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
    for text in (caplog.text, log_file.read_text(), (tmp_path / "d.parquet").read_bytes().decode("latin-1")):
        assert API_KEY not in text


def test_online_without_key_says_where_it_looks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fast: HttpSettings
) -> None:
    monkeypatch.delenv("MP_API_KEY", raising=False)
    online = {"mp_endpoint": "http://127.0.0.1:9", "timeout_s": 0.1, "retries": 0, "backoff_s": 0}
    with pytest.raises(RuntimeError, match="MP_API_KEY environment variable"):
        acquire_mp_dataset(
            "online", _labels(tmp_path / "hq.csv", ["mp-1000"]), tmp_path / "d.parquet", online=online
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


@pytest.mark.parametrize(("dataset", "rows"), [("dataset1", 95), ("dataset2", 143)])
def test_mirror(dataset: str, rows: int, tmp_path: Path) -> None:
    table = acquire_mp_dataset(
        "mirror", MIRROR / "hq" / f"{dataset}.csv", tmp_path / f"{dataset}.parquet", mirror_dir=MIRROR / "mp"
    )
    assert len(table) == rows and table.structure.notna().all()
    assert len(pd.read_parquet(tmp_path / f"{dataset}.parquet")) == rows


def test_mirror_unknown_id_gives_a_null_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        table = acquire_mp_dataset(
            "mirror",
            _labels(tmp_path / "hq.csv", ["mp-1000", UNKNOWN]),
            tmp_path / "x.parquet",
            mirror_dir=MIRROR / "mp",
        )
    assert table.structure.isna().tolist() == [False, True]
    assert UNKNOWN in caplog.text
