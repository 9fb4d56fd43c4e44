"""Materials Project structures of the high-quality LTC datasets (Dataset1, Dataset2).

Outputs (the data-module contract):

- a parquet table ``mp_id, formula, ltc_wmk, structure`` with one row per label row, ``structure``
  being the pymatgen ``Structure.as_dict()`` JSON string, or null (with a logged warning naming the
  id) when the Materials Project (or the mirror) has no such material; validation quarantines
  those rows later;
- a manifest ``mp_id, label_sha256, structure_sha256`` beside it, one row per label row: the
  checksum of the label's fields and of the structure JSON as stored (empty when null).

Online, every structure comes from ONE batched summary query through ``mp_api``'s
``SummaryRester`` (what ``MPRester().materials.summary`` is), heartbeat included, through the
retrying session of :mod:`kappaflow.sources.http`; a request that still fails raises
:class:`MaterialsProjectError`, one line naming the URL and the cause. The API key is read from
the ``MP_API_KEY`` environment variable only and is never logged or written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

import requests

from kappaflow.sources.checksums import row_sha256s, text_sha256
from kappaflow.sources.http import HttpSettings, get_bytes, get_json, make_session

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["mp_id", "formula", "ltc_wmk"]
COLUMNS = [*LABEL_COLUMNS, "structure"]
MANIFEST_COLUMNS = ["mp_id", "label_sha256", "structure_sha256"]
API_KEY_VARIABLE = "MP_API_KEY"
_BARE_NUMBER = re.compile(r"^\d+$")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class MaterialsProjectError(RuntimeError):
    """A Materials Project request failed for good (after the retries); the message is one line."""


def read_hq_labels(location: str | Path, settings: HttpSettings | None = None) -> pd.DataFrame:
    """A label list ``mp_id, formula, ltc_wmk`` from a local CSV or an http(s) URL.

    Ids stored as bare numbers upstream (``2894``) are normalised to ``mp-2894``.

    Raises:
        ValueError: a column is missing or an ``mp_id`` is empty.
    """
    location = str(location)
    if location.startswith(("http://", "https://")):
        settings = settings or HttpSettings()
        labels = pd.read_csv(io.BytesIO(get_bytes(make_session(settings), location, settings)))
    else:
        labels = pd.read_csv(location)
    missing = [column for column in LABEL_COLUMNS if column not in labels.columns]
    if missing:
        raise ValueError(f"{location}: missing columns {missing}")
    labels = labels[LABEL_COLUMNS].astype({"mp_id": "string"})
    empty = labels.index[labels["mp_id"].isna()]
    if len(empty):
        raise ValueError(f"{location}: empty mp_id in data row(s) {[int(i) + 1 for i in empty]}")
    labels["mp_id"] = (
        labels["mp_id"].str.strip().map(lambda mp_id: f"mp-{mp_id}" if _BARE_NUMBER.match(mp_id) else mp_id)
    )
    return labels.astype({"mp_id": str, "formula": str, "ltc_wmk": float})


def api_key_from_env() -> str:
    """The Materials Project API key from ``MP_API_KEY``.

    Raises:
        RuntimeError: the variable is unset or empty.
    """
    key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if not key:
        raise RuntimeError(
            f"source: online needs a Materials Project API key in the {API_KEY_VARIABLE} environment "
            "variable (https://materialsproject.org/api); it is read from there only"
        )
    return key


def heartbeat(session: requests.Session, endpoint: str, settings: HttpSettings) -> tuple[str, list[str]]:
    """The database version and access-controlled batch ids from ``<endpoint>/heartbeat``.

    Raises:
        requests.RequestException: the request failed after the session's retries.
        MaterialsProjectError: the answer has no ``db_version``.
    """
    url = f"{endpoint.rstrip('/')}/heartbeat"
    info = get_json(session, url, settings)
    if not isinstance(info, dict) or "db_version" not in info:
        raise MaterialsProjectError(f"unexpected answer from {url} (no db_version)")
    return info["db_version"], info.get("access_controlled_batch_ids", [])


def fetch_structures(mp_ids: list[str], endpoint: str, settings: HttpSettings) -> dict[str, str]:
    """Structures of ``mp_ids`` from one batched summary query: ``{mp_id: Structure JSON}``.

    Ids the Materials Project does not know are simply absent from the result. The client may
    rewrite an id (very large numbers become AlphaIDs); results are keyed by the id as requested.

    Raises:
        MaterialsProjectError: a request still failed after the retries (HTTP status or no connection).
    """
    api_key = api_key_from_env()
    # imported here: mp_api takes seconds to import, and mirror runs never need it
    from mp_api.client.core.exceptions import MPRestError
    from mp_api.client.core.utils import validate_ids

    requested = dict(zip(validate_ids(mp_ids), mp_ids, strict=True))
    session = make_session(settings)
    session.headers["x-api-key"] = api_key
    try:
        with _summary_rester(api_key, endpoint, session, settings) as summary:
            docs = summary.search(material_ids=mp_ids, fields=["material_id", "structure"])
    except (requests.RequestException, MPRestError, MaterialsProjectError) as error:
        raise _failure(error, endpoint, settings, api_key) from None
    log.info("Materials Project returned %d of %d requested structures", len(docs), len(mp_ids))
    return {
        requested.get(str(doc.material_id), str(doc.material_id)): json.dumps(doc.structure.as_dict())
        for doc in docs
    }


def _summary_rester(api_key: str, endpoint: str, session: requests.Session, settings: HttpSettings) -> Any:
    """``MPRester().materials.summary`` on ``session``, its heartbeat too (mp-api's own heartbeat is a
    bare ``requests.get``: no retries, no timeout). Built directly: MPRester does not pass a timeout
    on to its resters."""
    from mp_api.client.routes.materials.summary import SummaryRester

    class RetryingSummaryRester(SummaryRester):
        @staticmethod
        def _get_heartbeat_info(endpoint: str) -> tuple[str, list[str]]:
            return heartbeat(session, endpoint, settings)

    return RetryingSummaryRester(
        api_key=api_key,
        endpoint=endpoint,
        session=session,
        timeout=settings.timeout_s,
        mute_progress_bars=True,
    )


def _failure(error: Exception, endpoint: str, settings: HttpSettings, api_key: str) -> MaterialsProjectError:
    """One line naming the failed URL and the cause, never the key."""
    url = (
        getattr(error.request, "url", endpoint) if isinstance(error, requests.RequestException) else endpoint
    )
    if isinstance(error, requests.HTTPError) and error.response is not None:
        cause = f"HTTP {error.response.status_code}"
    elif isinstance(error, requests.Timeout):
        cause = f"no answer within {settings.timeout_s:g} s"
    elif isinstance(error, requests.ConnectionError):
        errno = _ERRNO.search(str(error))
        cause = f"cannot connect ({errno.group(1).strip() if errno else type(error).__name__})"
    else:
        cause = str(error)
    message = (
        f"Materials Project request failed: {url}: {cause} "
        f"(timeout {settings.timeout_s:g} s, {settings.retries} retries on connection errors, 429 and 5xx)"
    )
    return MaterialsProjectError(" ".join(message.replace(api_key, "***").split()))


def mirror_structure_files(mp_ids: list[str], structures_dir: str | Path) -> list[Path]:
    """The mirror's ``<mp_id>.json`` of each of ``mp_ids`` that has one (each once, in order)."""
    paths = (Path(structures_dir) / f"{mp_id}.json" for mp_id in dict.fromkeys(mp_ids))
    return [path for path in paths if path.is_file()]


def read_structure_files(mp_ids: list[str], files: list[str | Path]) -> dict[str, str]:
    """Structures of ``mp_ids`` from files named ``<mp_id>.json``; ids without a file are absent."""
    by_id = {Path(path).stem: Path(path) for path in files}
    return {mp_id: by_id[mp_id].read_text().strip() for mp_id in mp_ids if mp_id in by_id}


def read_mirror_structures(mp_ids: list[str], structures_dir: str | Path) -> dict[str, str]:
    """Structures of ``mp_ids`` from the mirror's ``<mp_id>.json`` files; absent files are absent ids."""
    return read_structure_files(mp_ids, mirror_structure_files(mp_ids, structures_dir))


def structure_table(labels: pd.DataFrame, structures: dict[str, str], name: str, origin: str) -> pd.DataFrame:
    """The label rows with their ``structure`` column, null (and a warning) where ``origin`` had none."""
    table = labels.copy()
    table["structure"] = pd.Series(
        [structures.get(mp_id) for mp_id in table["mp_id"]], index=table.index, dtype="string"
    )
    for mp_id in table.loc[table["structure"].isna(), "mp_id"]:
        log.warning("%s: %s is not in %s; its structure is left null", name, mp_id, origin)
    return table[COLUMNS]


def write_manifest(table: pd.DataFrame, manifest: str | Path) -> None:
    """The manifest of a structure table: label-row and structure checksums (empty for a null structure)."""
    structure_sha256 = ["" if pd.isna(text) else text_sha256(text) for text in table["structure"]]
    pd.DataFrame(
        {
            "mp_id": table["mp_id"],
            "label_sha256": row_sha256s(table, LABEL_COLUMNS),
            "structure_sha256": structure_sha256,
        },
        columns=MANIFEST_COLUMNS,
    ).to_csv(manifest, index=False)


def acquire_mp_dataset(
    source: str,
    labels: str | Path,
    parquet: str | Path,
    manifest: str | Path,
    mirror_files: list[str | Path] | None = None,
    online: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Labels plus Materials Project structures of one dataset, written to ``parquet`` and ``manifest``.

    Args:
        source: ``"mirror"`` reads ``mirror_files``; ``"online"`` queries ``online["mp_endpoint"]``
            with the key from ``MP_API_KEY``.
        labels: the label CSV, a local path or an http(s) URL.
        parquet: output table ``mp_id, formula, ltc_wmk, structure``.
        manifest: output manifest ``mp_id, label_sha256, structure_sha256``.
        mirror_files: the mirror's ``structures/<mp_id>.json`` files of the label ids (those that
            exist: see :func:`mirror_structure_files`).
        online: the config's ``online`` settings: ``mp_endpoint``, ``timeout_s``, ``retries``,
            ``backoff_s``.
    """
    name = Path(parquet).stem
    if source == "mirror" and mirror_files is not None:
        table = read_hq_labels(labels)
        structures = read_structure_files(list(table["mp_id"]), mirror_files)
        origin = "the mirror"
    elif source == "online" and online is not None:
        settings = HttpSettings.from_config(online)
        table = read_hq_labels(labels, settings)
        structures = fetch_structures(list(table["mp_id"]), online["mp_endpoint"], settings)
        origin = "the Materials Project"
    else:
        raise ValueError(
            f"source {source!r}: expected 'mirror' with mirror_files, or 'online' with its settings"
        )
    table = structure_table(table, structures, name, origin)
    Path(parquet).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(parquet, index=False)
    write_manifest(table, manifest)
    log.info(
        "wrote %s: %d rows, %d without structure", parquet, len(table), int(table["structure"].isna().sum())
    )
    return table
