"""AFLOW AGL lattice thermal conductivities and their CIFs, from AFLUX or from the mirror.

Outputs (the data-module contract):

- ``labels.csv``: ``entry, compound, icsd_id, agl_thermal_conductivity_300K`` (+ ``aurl`` online),
  sorted by entry;
- ``cif/<entry>.cif`` beside it, one per label row;
- a manifest ``entry, label_sha256, cif, sha256, missing``, one row per label row: the checksum of
  the label's fields, the CIF (relative to the manifest) and its checksum, or, for an entry without a
  CIF, empty ``cif`` and ``sha256`` and the reason in ``missing`` (validation quarantines that row).
  The manifest, not the CIF folder, is the Snakemake output, so that a failed or interrupted run
  keeps the CIFs it already has and the next run only fetches the missing ones.

From the mirror, a CIF is copied whenever its content differs from the copy in ``cif/``. An entry
listed twice with different values is kept twice (validation quarantines both as a conflict).

Online, AFLUX is queried page by page for every ICSD entry with an AGL conductivity
(``$catalog(ICSD),agl_thermal_conductivity_300K(*)``) and each entry's CIF comes from
``<aurl as http URL>/<entry>.cif``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from kappaflow.sources.checksums import copy_if_changed, file_sha256, row_sha256s
from kappaflow.sources.http import HttpSettings, download, get_json, make_session

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["entry", "compound", "icsd_id", "agl_thermal_conductivity_300K"]
MANIFEST_COLUMNS = ["entry", "label_sha256", "cif", "sha256", "missing"]
#: AFLUX matchbook: every ICSD entry that has an AGL thermal conductivity at 300 K.
AFLUX_MATCHBOOK = "$catalog(ICSD),agl_thermal_conductivity_300K(*)"
_ICSD_ID = re.compile(r"_ICSD_(\d+)$")


def aflux_page_url(aflux_url: str, page: int, page_size: int) -> str:
    """The AFLUX request for one page (1-based) of the AGL query."""
    return f"{aflux_url.rstrip('/')}/?{AFLUX_MATCHBOOK},$paging({page},{page_size}),format(json)"


def aurl_to_url(aurl: str) -> str:
    """The HTTP URL of an AURL: ``server:AFLOWDATA/...`` -> ``http://server/AFLOWDATA/...``.

    The server part may carry a port (``host:8080:AFLOWDATA/...``): only the last colon before the
    first ``/`` separates server and path.
    """
    head, slash, tail = aurl.partition("/")
    server, sep, first = head.rpartition(":")
    if not sep or not server:
        raise ValueError(f"AURL {aurl!r} has no 'server:path' separator")
    return f"http://{server}/{first}{slash}{tail}"


def query_agl_entries(
    session: requests.Session, aflux_url: str, page_size: int, settings: HttpSettings
) -> pd.DataFrame:
    """Every ICSD entry with an AGL conductivity at 300 K, as label rows sorted by entry.

    Pages are requested until one comes back short or empty. Entries listed twice with the same
    values (AFLUX pages are not guaranteed stable) are kept once; with different values, twice.

    Raises:
        ValueError: a page is not a JSON list, or a record lacks ``aurl``, ``compound`` or the
            conductivity.
    """
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        url = aflux_page_url(aflux_url, page, page_size)
        batch = get_json(session, url, settings)
        if not batch:  # AFLUX answers [] (or {}) past the last page
            break
        if not isinstance(batch, list):
            raise ValueError(f"AFLUX page {page} ({url}): expected a JSON list, got {type(batch).__name__}")
        records.extend(_label_row(record, url) for record in batch)
        log.info("AFLUX page %d: %d entries (%d so far)", page, len(batch), len(records))
        if len(batch) < page_size:
            break
        page += 1
    labels = pd.DataFrame(records, columns=[*LABEL_COLUMNS, "aurl"])
    repeated = labels.duplicated()
    if repeated.any():
        log.warning("AFLUX listed %d entries more than once; keeping each once", int(repeated.sum()))
        labels = labels[~repeated]
    conflicting = sorted(set(labels.loc[labels["entry"].duplicated(), "entry"]))
    if conflicting:
        log.warning("AFLUX lists %s with different values; both are kept (a conflict)", conflicting)
    return _sorted_labels(labels)


def fetch_aflow_agl(
    aflux_url: str,
    page_size: int,
    settings: HttpSettings,
    labels_csv: str | Path,
    manifest_csv: str | Path,
    subset: int | None = None,
) -> pd.DataFrame:
    """Query AFLUX, keep the first ``subset`` entries, download their CIFs; write labels and manifest.

    CIFs already in ``cif/`` are not requested again. An entry whose CIF the server does not have
    (HTTP 404) is logged and left without one (a manifest row with the reason; validation rejects
    it); any other failure stops the run after the remaining CIFs were tried, so that a rerun
    resumes where this one stopped.

    Returns:
        The label table written to ``labels_csv``.
    """
    session = make_session(settings)
    labels = _take_subset(query_agl_entries(session, aflux_url, page_size, settings), subset)
    cif_dir = Path(labels_csv).parent / "cif"
    cif_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        row
        for row in labels.drop_duplicates("entry").itertuples()
        if not (cif_dir / f"{row.entry}.cif").exists()
    ]
    present = labels["entry"].nunique() - len(todo)
    log.info("%d entries, %d CIFs already present, %d to download", len(labels), present, len(todo))
    failed: list[str] = []
    missing: dict[str, str] = {}
    for done, row in enumerate(todo):
        if done and done % 500 == 0:
            log.info("%d of %d CIFs downloaded", done, len(todo))
        url = f"{aurl_to_url(row.aurl)}/{row.entry}.cif"
        try:
            download(session, url, cif_dir / f"{row.entry}.cif", settings)
        except requests.RequestException as error:
            if error.response is not None and error.response.status_code == 404:
                log.warning("entry %s: no CIF at %s (HTTP 404); left without a structure", row.entry, url)
                missing[row.entry] = f"no CIF at {url} (HTTP 404)"
                continue
            log.error("entry %s: %s", row.entry, error)
            failed.append(row.entry)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(todo)} CIF downloads failed (first: {failed[:5]}); "
            "rerun to fetch only the missing ones"
        )
    _write_outputs(labels, cif_dir, labels_csv, manifest_csv, missing)
    return labels


def read_mirror_labels(mirror_dir: str | Path, subset: int | None = None) -> pd.DataFrame:
    """The first ``subset`` label rows of the mirror's ``labels.csv``, sorted by entry.

    Raises:
        ValueError: a contract column is missing.
    """
    source = Path(mirror_dir) / "labels.csv"
    labels = pd.read_csv(source)
    missing = [column for column in LABEL_COLUMNS if column not in labels.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    return _take_subset(_sorted_labels(labels[LABEL_COLUMNS]), subset)


def mirror_cif(mirror_dir: str | Path, entry: str) -> Path:
    """Where the mirror keeps the CIF of ``entry``."""
    return Path(mirror_dir) / "cif" / f"{entry}.cif"


def copy_aflow_agl(
    mirror_dir: str | Path, labels_csv: str | Path, manifest_csv: str | Path, subset: int | None = None
) -> pd.DataFrame:
    """The mirror's ``labels.csv`` and CIFs (first ``subset`` entries), copied like downloads.

    A CIF is copied when its copy in ``cif/`` is absent or differs (sha256). An entry whose CIF the
    mirror lacks loses any earlier copy and gets a manifest row naming the missing file.

    Raises:
        FileNotFoundError: the mirror lacks ``labels.csv``.
        ValueError: the mirror's ``labels.csv`` lacks a contract column.
    """
    labels = read_mirror_labels(mirror_dir, subset)
    cif_dir = Path(labels_csv).parent / "cif"
    cif_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    missing: dict[str, str] = {}
    for entry in dict.fromkeys(labels["entry"]):
        src, dest = mirror_cif(mirror_dir, entry), cif_dir / f"{entry}.cif"
        if src.is_file():
            copied += copy_if_changed(src, dest)
            continue
        missing[entry] = f"CIF missing from the mirror: {src}"
        dest.unlink(missing_ok=True)
        log.warning("entry %s: %s; left without a structure", entry, missing[entry])
    log.info("%d entries from %s, %d CIFs copied (new or changed)", len(labels), mirror_dir, copied)
    _write_outputs(labels, cif_dir, labels_csv, manifest_csv, missing)
    return labels


def acquire_aflow_agl(
    source: str,
    labels_csv: str | Path,
    manifest_csv: str | Path,
    subset: int | None = None,
    mirror_dir: str | Path | None = None,
    online: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The AFLOW AGL labels and CIFs from ``source``: ``"mirror"`` or ``"online"``.

    Args:
        source: ``"mirror"`` copies from ``mirror_dir``; ``"online"`` queries AFLUX with ``online``.
        labels_csv: output label table; the CIFs go to ``cif/`` beside it.
        manifest_csv: output manifest of the CIFs.
        subset: keep only the first N entries by entry name; ``None`` keeps all.
        mirror_dir: the mirror's ``aflow_agl`` folder.
        online: the config's ``online`` settings: ``aflux_url``, ``aflow_page_size``, ``timeout_s``,
            ``retries``, ``backoff_s``.
    """
    if source == "mirror" and mirror_dir is not None:
        return copy_aflow_agl(mirror_dir, labels_csv, manifest_csv, subset)
    if source == "online" and online is not None:
        settings = HttpSettings.from_config(online)
        return fetch_aflow_agl(
            online["aflux_url"], online["aflow_page_size"], settings, labels_csv, manifest_csv, subset
        )
    raise ValueError(f"source {source!r}: expected 'mirror' with mirror_dir, or 'online' with its settings")


def _label_row(record: dict[str, Any], url: str) -> dict[str, Any]:
    try:
        aurl = record["aurl"]
        row = {
            "compound": record["compound"],
            "agl_thermal_conductivity_300K": record["agl_thermal_conductivity_300K"],
            "aurl": aurl,
        }
    except KeyError as error:
        raise ValueError(f"AFLUX record {record.get('auid', record)} from {url} lacks {error}") from None
    entry = aurl.rstrip("/").rsplit("/", 1)[-1]
    icsd = _ICSD_ID.search(entry)
    return {"entry": entry, "icsd_id": int(icsd.group(1)) if icsd else None, **row}


def _sorted_labels(labels: pd.DataFrame) -> pd.DataFrame:
    labels = labels.sort_values("entry", kind="stable").reset_index(drop=True)
    return labels.astype({"icsd_id": "Int64"})


def _take_subset(labels: pd.DataFrame, subset: int | None) -> pd.DataFrame:
    if subset is None:
        return labels
    log.info("aflow_subset: keeping the first %d of %d entries", min(subset, len(labels)), len(labels))
    return labels.head(subset)


def _write_outputs(
    labels: pd.DataFrame,
    cif_dir: Path,
    labels_csv: str | Path,
    manifest_csv: str | Path,
    missing: dict[str, str],
) -> None:
    """Write the labels and their manifest: one row per label row, an entry in ``missing`` without a CIF."""
    rows = []
    for entry, label_sha256 in zip(labels["entry"], row_sha256s(labels, LABEL_COLUMNS)):
        if entry in missing:
            rows.append((entry, label_sha256, "", "", missing[entry]))
        else:
            path = cif_dir / f"{entry}.cif"
            rows.append((entry, label_sha256, f"{cif_dir.name}/{path.name}", file_sha256(path), ""))
    labels.to_csv(labels_csv, index=False)
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest.to_csv(manifest_csv, index=False)
    log.info(
        "wrote %s (%d rows) and %s (%d CIFs, %d missing)",
        labels_csv,
        len(labels),
        manifest_csv,
        int((manifest["sha256"] != "").sum()),
        int((manifest["sha256"] == "").sum()),
    )
