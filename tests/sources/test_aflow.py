"""AFLOW AGL acquisition: AFLUX paging with faults, resumable CIF downloads, the mirror."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from fake_servers import AFLUX_PATH, MIRROR, FakeServer
from kappaflow.sources.aflow import (
    LABEL_COLUMNS,
    acquire_aflow_agl,
    aflux_page_url,
    aurl_to_url,
    copy_aflow_agl,
    fetch_aflow_agl,
)
from kappaflow.sources.http import HttpSettings


def test_aflux_page_url() -> None:
    url = aflux_page_url("https://aflow.org/API/aflux/", 2, 1000)
    assert url == (
        "https://aflow.org/API/aflux/?$catalog(ICSD),agl_thermal_conductivity_300K(*),$paging(2,1000),format(json)"
    )


@pytest.mark.parametrize(
    ("aurl", "url"),
    [
        (
            "aflowlib.duke.edu:AFLOWDATA/ICSD_WEB/FCC/Mg1O1_ICSD_9863",
            "http://aflowlib.duke.edu/AFLOWDATA/ICSD_WEB/FCC/Mg1O1_ICSD_9863",
        ),
        (
            "127.0.0.1:8080:AFLOWDATA/ICSD_WEB/FCC/X_ICSD_1",
            "http://127.0.0.1:8080/AFLOWDATA/ICSD_WEB/FCC/X_ICSD_1",
        ),
    ],
)
def test_aurl_to_url(aurl: str, url: str) -> None:
    assert aurl_to_url(aurl) == url


def _fetch(server: FakeServer, out: Path, settings: HttpSettings, subset: int | None = None) -> pd.DataFrame:
    return fetch_aflow_agl(
        f"{server.url}{AFLUX_PATH}", 2, settings, out / "labels.csv", out / "cif_manifest.csv", subset
    )


@pytest.mark.network
def test_online_with_faults(
    aflow: FakeServer, aflow_labels: pd.DataFrame, tmp_path: Path, fast: HttpSettings
) -> None:
    entries = sorted(aflow_labels.entry)
    aflow.inject("$paging(1,2)", "badjson")
    aflow.inject("$paging(2,2)", "500", "cut")
    aflow.inject(f"/{entries[1]}.cif", "sleep")
    aflow.inject(f"/{entries[2]}.cif", "500", "500")

    labels = _fetch(aflow, tmp_path, fast)

    assert list(labels.columns) == [*LABEL_COLUMNS, "aurl"]
    assert list(labels.entry) == entries
    written = pd.read_csv(tmp_path / "labels.csv")
    expected = aflow_labels.sort_values("entry").reset_index(drop=True)
    pd.testing.assert_frame_equal(written[LABEL_COLUMNS], expected[LABEL_COLUMNS])
    # each fault costs one more request; page 3 is full (2 of 6), page 4 empty
    assert len(aflow.requests_for("$paging(1,2)")) == 2
    assert len(aflow.requests_for("$paging(2,2)")) == 3
    assert len(aflow.requests_for("$paging(3,2)")) == 1
    assert len(aflow.requests_for("$paging(4,2)")) == 1
    assert len(aflow.requests_for(f"/{entries[1]}.cif")) == 2
    assert len(aflow.requests_for(f"/{entries[2]}.cif")) == 3
    for entry in entries:
        served = (tmp_path / "cif" / f"{entry}.cif").read_bytes()
        if entry == aflow_labels.entry[3]:  # stored as served; validation rejects it
            assert served.startswith(b"this is not a CIF")
        else:
            assert served == (MIRROR / "aflow_agl" / "cif" / f"{entry}.cif").read_bytes()
    manifest = pd.read_csv(tmp_path / "cif_manifest.csv")
    assert list(manifest.entry) == entries
    assert not list((tmp_path / "cif").glob("*.part"))


@pytest.mark.network
def test_resumes_after_interruption(
    aflow: FakeServer, aflow_labels: pd.DataFrame, tmp_path: Path, fast: HttpSettings
) -> None:
    done, partial = sorted(aflow_labels.entry)[:2]
    (tmp_path / "cif").mkdir()
    (tmp_path / "cif" / f"{done}.cif").write_text("kept from the first run\n")
    (tmp_path / "cif" / f"{partial}.cif.part").write_text("interrupted")

    _fetch(aflow, tmp_path, fast)

    assert aflow.requests_for(f"/{done}.cif") == []
    assert (tmp_path / "cif" / f"{done}.cif").read_text() == "kept from the first run\n"
    assert len(aflow.requests_for(f"/{partial}.cif")) == 1
    assert (tmp_path / "cif" / f"{partial}.cif").read_bytes() == (
        MIRROR / "aflow_agl" / "cif" / f"{partial}.cif"
    ).read_bytes()
    assert not (tmp_path / "cif" / f"{partial}.cif.part").exists()


@pytest.mark.network
def test_failed_downloads_fail_the_run_but_keep_the_rest(
    aflow: FakeServer, aflow_labels: pd.DataFrame, tmp_path: Path, fast: HttpSettings
) -> None:
    broken = sorted(aflow_labels.entry)[0]
    aflow.inject(f"/{broken}.cif", *["500"] * (fast.retries + 1))
    with pytest.raises(RuntimeError, match=f"1 of 6 CIF downloads failed.*{broken}"):
        _fetch(aflow, tmp_path, fast)
    assert len(list((tmp_path / "cif").glob("*.cif"))) == 5
    assert not (tmp_path / "labels.csv").exists()

    _fetch(aflow, tmp_path, fast)  # the rerun fetches only the missing CIF
    assert len(aflow.requests_for(".cif")) == 6 + fast.retries + 1


@pytest.mark.network
def test_missing_cif_is_logged_and_skipped(
    aflow: FakeServer,
    aflow_labels: pd.DataFrame,
    tmp_path: Path,
    fast: HttpSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    row = aflow_labels.iloc[0]
    del aflow.routes[f"/AFLOWDATA/ICSD_WEB/{row.lattice_type}/{row.entry}/{row.entry}.cif"]
    with caplog.at_level(logging.WARNING):
        labels = _fetch(aflow, tmp_path, fast)
    assert row.entry in set(labels.entry)
    assert row.entry not in set(pd.read_csv(tmp_path / "cif_manifest.csv").entry)
    assert f"entry {row.entry}: no CIF" in caplog.text


@pytest.mark.network
def test_subset_fetches_only_the_first_entries(
    aflow: FakeServer, aflow_labels: pd.DataFrame, tmp_path: Path, fast: HttpSettings
) -> None:
    labels = _fetch(aflow, tmp_path, fast, subset=2)
    assert list(labels.entry) == sorted(aflow_labels.entry)[:2]
    assert len(aflow.requests_for(".cif")) == 2


def test_mirror_full(tmp_path: Path) -> None:
    labels = acquire_aflow_agl(
        "mirror", tmp_path / "labels.csv", tmp_path / "m.csv", mirror_dir=MIRROR / "aflow_agl"
    )
    assert len(labels) == 3269
    assert list(pd.read_csv(tmp_path / "labels.csv").columns) == LABEL_COLUMNS
    assert len(pd.read_csv(tmp_path / "m.csv")) == 3269
    assert len(list((tmp_path / "cif").iterdir())) == 3269


def test_mirror_subset_and_resume(tmp_path: Path) -> None:
    labels = copy_aflow_agl(MIRROR / "aflow_agl", tmp_path / "labels.csv", tmp_path / "m.csv", subset=50)
    assert len(labels) == 50 and labels.entry.is_monotonic_increasing
    assert sorted(p.stem for p in (tmp_path / "cif").iterdir()) == list(labels.entry)
    (tmp_path / "cif" / f"{labels.entry[0]}.cif").write_text("kept")
    copy_aflow_agl(MIRROR / "aflow_agl", tmp_path / "labels.csv", tmp_path / "m.csv", subset=50)
    assert (tmp_path / "cif" / f"{labels.entry[0]}.cif").read_text() == "kept"


def test_mirror_errors_name_the_file(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "cif").mkdir(parents=True)
    pd.DataFrame(
        {"entry": ["A_ICSD_1"], "compound": ["A"], "icsd_id": [1], "agl_thermal_conductivity_300K": [1.0]}
    ).to_csv(mirror / "labels.csv", index=False)
    with pytest.raises(FileNotFoundError, match="A_ICSD_1 has no CIF"):
        copy_aflow_agl(mirror, tmp_path / "labels.csv", tmp_path / "m.csv")
    pd.DataFrame({"entry": ["A_ICSD_1"]}).to_csv(mirror / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels.csv: missing columns \['compound'"):
        copy_aflow_agl(mirror, tmp_path / "labels.csv", tmp_path / "m.csv")
