"""AFLOW AGL acquisition: AFLUX paging with faults, resumable CIF downloads, the mirror."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from fake_servers import AFLUX_PATH, MIRROR, FakeServer, aflow_mirror_labels, aflow_server
from kappaflow.sources.aflow import (
    LABEL_COLUMNS,
    MANIFEST_COLUMNS,
    acquire_aflow_agl,
    aflux_page_url,
    aurl_to_url,
    copy_aflow_agl,
    fetch_aflow_agl,
)
from kappaflow.sources.checksums import copy_if_changed, file_sha256, row_sha256s
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
    manifest = pd.read_csv(tmp_path / "cif_manifest.csv", keep_default_na=False).set_index("entry")
    assert manifest.loc[row.entry, "sha256"] == "" and manifest.loc[row.entry, "cif"] == ""
    assert manifest.loc[row.entry, "missing"].startswith("no CIF at http://")
    assert "(HTTP 404)" in manifest.loc[row.entry, "missing"]
    assert f"entry {row.entry}: no CIF" in caplog.text


@pytest.mark.network
def test_online_duplicates_exact_kept_once_conflicting_kept_twice(tmp_path: Path, fast: HttpSettings) -> None:
    labels = aflow_mirror_labels(3)
    conflict = labels.iloc[[1]].assign(agl_thermal_conductivity_300K=7.77)
    served = pd.concat([labels, labels.iloc[[0]], conflict], ignore_index=True)
    with aflow_server(served) as server:
        written = _fetch(server, tmp_path, fast)
    entries = sorted(labels.entry)
    assert list(written.entry) == [entries[0], entries[1], entries[1], entries[2]]
    kappas = written.loc[written.entry == labels.entry[1], "agl_thermal_conductivity_300K"]
    assert sorted(kappas) == sorted([labels.agl_thermal_conductivity_300K[1], 7.77])
    manifest = pd.read_csv(tmp_path / "cif_manifest.csv")
    assert list(manifest.entry) == list(written.entry)
    assert manifest.label_sha256.nunique() == 4


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


def test_mirror_subset_recopies_only_changed_cifs(tmp_path: Path) -> None:
    labels = copy_aflow_agl(MIRROR / "aflow_agl", tmp_path / "labels.csv", tmp_path / "m.csv", subset=50)
    assert len(labels) == 50 and labels.entry.is_monotonic_increasing
    assert sorted(p.stem for p in (tmp_path / "cif").iterdir()) == list(labels.entry)
    stale, kept = (tmp_path / "cif" / f"{entry}.cif" for entry in labels.entry[:2])
    stale.write_text("stale copy")
    kept_inode = kept.stat().st_ino
    copy_aflow_agl(MIRROR / "aflow_agl", tmp_path / "labels.csv", tmp_path / "m.csv", subset=50)
    assert stale.read_bytes() == (MIRROR / "aflow_agl" / "cif" / stale.name).read_bytes()
    assert kept.stat().st_ino == kept_inode, "an unchanged copy is not rewritten"


def test_mirror_manifest_checksums(tmp_path: Path) -> None:
    labels = copy_aflow_agl(MIRROR / "aflow_agl", tmp_path / "labels.csv", tmp_path / "m.csv", subset=5)
    manifest = pd.read_csv(tmp_path / "m.csv", keep_default_na=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(manifest.entry) == list(labels.entry)
    assert list(manifest.label_sha256) == row_sha256s(labels, LABEL_COLUMNS)
    for row in manifest.itertuples():
        assert row.sha256 == file_sha256(MIRROR / "aflow_agl" / "cif" / f"{row.entry}.cif")
        assert row.cif == f"cif/{row.entry}.cif" and row.missing == ""
    changed = labels.assign(agl_thermal_conductivity_300K=labels.agl_thermal_conductivity_300K + 0.01)
    assert all(a != b for a, b in zip(row_sha256s(changed, LABEL_COLUMNS), manifest.label_sha256))


def test_copy_if_changed(tmp_path: Path) -> None:
    src, dest = tmp_path / "src.cif", tmp_path / "dest.cif"
    src.write_text("a")
    assert copy_if_changed(src, dest) and dest.read_text() == "a"
    assert not copy_if_changed(src, dest)
    src.write_text("b")
    assert copy_if_changed(src, dest) and dest.read_text() == "b"
    assert not (tmp_path / "dest.cif.part").exists()


def _tiny_mirror(mirror: Path) -> None:
    """A mirror of two entries, ``A_ICSD_1`` (with its CIF) and ``B_ICSD_2`` (without)."""
    (mirror / "cif").mkdir(parents=True)
    pd.DataFrame(
        {
            "entry": ["A_ICSD_1", "B_ICSD_2"],
            "compound": ["A", "B"],
            "icsd_id": [1, 2],
            "agl_thermal_conductivity_300K": [1.0, 2.0],
        }
    ).to_csv(mirror / "labels.csv", index=False)
    (mirror / "cif" / "A_ICSD_1.cif").write_text("data_A\n")


def test_mirror_missing_cif_gets_a_manifest_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mirror = tmp_path / "mirror"
    _tiny_mirror(mirror)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cif").mkdir()
    (out / "cif" / "B_ICSD_2.cif").write_text("a copy from before the mirror lost it")
    with caplog.at_level(logging.WARNING):
        labels = copy_aflow_agl(mirror, out / "labels.csv", out / "m.csv")
    assert list(labels.entry) == ["A_ICSD_1", "B_ICSD_2"]
    manifest = pd.read_csv(out / "m.csv", keep_default_na=False).set_index("entry")
    assert manifest.loc["A_ICSD_1", "sha256"] == file_sha256(mirror / "cif" / "A_ICSD_1.cif")
    assert manifest.loc["B_ICSD_2", "sha256"] == "" and manifest.loc["B_ICSD_2", "cif"] == ""
    assert (
        manifest.loc["B_ICSD_2", "missing"]
        == f"CIF missing from the mirror: {mirror / 'cif' / 'B_ICSD_2.cif'}"
    )
    assert not (out / "cif" / "B_ICSD_2.cif").exists(), "the stale copy is removed"
    assert "B_ICSD_2" in caplog.text


def test_mirror_errors_name_the_file(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "cif").mkdir(parents=True)
    pd.DataFrame({"entry": ["A_ICSD_1"]}).to_csv(mirror / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels.csv: missing columns \['compound'"):
        copy_aflow_agl(mirror, tmp_path / "labels.csv", tmp_path / "m.csv")
