"""Materials Project structures of the high-quality LTC datasets (Dataset1, Dataset2).

Output (the data-module contract): a parquet table ``mp_id, formula, ltc_wmk, structure`` with
one row per label row, ``structure`` being the pymatgen ``Structure.as_dict()`` JSON string, or
null (with a logged warning naming the id) when the Materials Project has no such material.
Validation quarantines those rows later.

Online, every structure comes from ONE batched summary query through ``mp_api``'s
``SummaryRester`` (what ``MPRester().materials.summary`` is); the API key is
read from the ``MP_API_KEY`` environment variable only and is never logged or written.
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

from kappaflow.sources.http import HttpSettings, get_bytes, make_session

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["mp_id", "formula", "ltc_wmk"]
COLUMNS = [*LABEL_COLUMNS, "structure"]
API_KEY_VARIABLE = "MP_API_KEY"
_BARE_NUMBER = re.compile(r"^\d+$")


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


def fetch_structures(mp_ids: list[str], endpoint: str, settings: HttpSettings) -> dict[str, str]:
    """Structures of ``mp_ids`` from one batched summary query: ``{mp_id: Structure JSON}``.

    Ids the Materials Project does not know are simply absent from the result. The client may
    rewrite an id (very large numbers become AlphaIDs); results are keyed by the id as requested.
    """
    api_key = api_key_from_env()
    # imported here: mp_api takes seconds to import, and mirror runs never need it
    from mp_api.client.core.utils import validate_ids
    from mp_api.client.routes.materials.summary import SummaryRester

    requested = dict(zip(validate_ids(mp_ids), mp_ids, strict=True))
    session = make_session(settings)
    session.headers["x-api-key"] = api_key
    # MPRester().materials.summary, built directly: MPRester does not pass a timeout on to its resters.
    with SummaryRester(
        api_key=api_key,
        endpoint=endpoint,
        session=session,
        timeout=settings.timeout_s,
        mute_progress_bars=True,
    ) as summary:
        docs = summary.search(material_ids=mp_ids, fields=["material_id", "structure"])
    log.info("Materials Project returned %d of %d requested structures", len(docs), len(mp_ids))
    return {
        requested.get(str(doc.material_id), str(doc.material_id)): json.dumps(doc.structure.as_dict())
        for doc in docs
    }


def read_mirror_structures(mp_ids: list[str], structures_dir: str | Path) -> dict[str, str]:
    """Structures of ``mp_ids`` from the mirror's ``<mp_id>.json`` files; absent files are absent ids."""
    structures_dir = Path(structures_dir)
    return {
        mp_id: (structures_dir / f"{mp_id}.json").read_text().strip()
        for mp_id in mp_ids
        if (structures_dir / f"{mp_id}.json").is_file()
    }


def structure_table(labels: pd.DataFrame, structures: dict[str, str], name: str) -> pd.DataFrame:
    """The label rows with their ``structure`` column, null (and a warning) where none was found."""
    table = labels.copy()
    table["structure"] = pd.Series(
        [structures.get(mp_id) for mp_id in table["mp_id"]], index=table.index, dtype="string"
    )
    for mp_id in table.loc[table["structure"].isna(), "mp_id"]:
        log.warning("%s: %s is not in the Materials Project; its structure is left null", name, mp_id)
    return table[COLUMNS]


def acquire_mp_dataset(
    source: str,
    labels: str | Path,
    parquet: str | Path,
    mirror_dir: str | Path | None = None,
    online: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Labels plus Materials Project structures of one dataset, written to ``parquet``.

    Args:
        source: ``"mirror"`` reads ``<mirror_dir>/structures/<mp_id>.json``; ``"online"`` queries
            ``online["mp_endpoint"]`` with the key from ``MP_API_KEY``.
        labels: the label CSV, a local path or an http(s) URL.
        parquet: output table ``mp_id, formula, ltc_wmk, structure``.
        mirror_dir: the mirror's ``mp`` folder.
        online: the config's ``online`` settings: ``mp_endpoint``, ``timeout_s``, ``retries``,
            ``backoff_s``.
    """
    name = Path(parquet).stem
    if source == "mirror" and mirror_dir is not None:
        table = read_hq_labels(labels)
        structures = read_mirror_structures(list(table["mp_id"]), Path(mirror_dir) / "structures")
    elif source == "online" and online is not None:
        settings = HttpSettings.from_config(online)
        table = read_hq_labels(labels, settings)
        structures = fetch_structures(list(table["mp_id"]), online["mp_endpoint"], settings)
    else:
        raise ValueError(
            f"source {source!r}: expected 'mirror' with mirror_dir, or 'online' with its settings"
        )
    table = structure_table(table, structures, name)
    Path(parquet).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(parquet, index=False)
    log.info(
        "wrote %s: %d rows, %d without structure", parquet, len(table), int(table["structure"].isna().sum())
    )
    return table
