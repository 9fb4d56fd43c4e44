"""Structures to predict: files (CIF, POSCAR/CONTCAR, pymatgen JSON), folders of them, Materials Project ids.

Every argument becomes one or more :class:`Item` s (a folder one per structure file in it), each
holding either a parsed structure or the reason it could not be read. Nothing here raises for a
bad input: a user mistake is a message, never a traceback.

Materials Project ids are read from the offline mirror (``<mirror>/mp/structures/<id>.json``) or
fetched online with :func:`kappaflow.sources.materials_project.fetch_structures` (API key from
``MP_API_KEY``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymatgen.core import Structure

from kappaflow.sources.http import HttpSettings
from kappaflow.sources.materials_project import fetch_structures, read_mirror_structures
from kappaflow.validation import InvalidRow, parse_cif, parse_structure_json

#: Materials Project ids (``mp-149``, ``mvc-123``).
MP_ID = re.compile(r"^(mp|mvc)-\d+$")
#: Environment variable overriding the default offline mirror.
MIRROR_VARIABLE = "KAPPAFLOW_MIRROR_DIR"
_POSCAR_NAMES = ("POSCAR", "CONTCAR")
_SUFFIXES = (".cif", ".json", ".vasp", ".poscar")
_EXPECTED = "*.cif, *.json, *.vasp, *.poscar, or a name with POSCAR or CONTCAR"


@dataclass
class Item:
    """One structure to predict: the input as the user named it, and a structure or an error."""

    input: str
    structure: Structure | None = None
    error: str | None = None


@dataclass(frozen=True)
class MPSource:
    """Where Materials Project ids are resolved.

    Attributes:
        mode: ``"mirror"`` (``<mirror_dir>/mp/structures/<id>.json``) or ``"online"``.
        mirror_dir: the offline mirror (the folder holding ``mp/``).
        endpoint: the Materials Project API endpoint (online).
        settings: timeout and retries of online requests.
    """

    mode: str = "mirror"
    mirror_dir: Path = field(default_factory=lambda: default_mirror_dir())
    endpoint: str = "https://api.materialsproject.org"
    settings: HttpSettings = field(default_factory=HttpSettings)


def default_mirror_dir() -> Path:
    """``$KAPPAFLOW_MIRROR_DIR``, else ``../shared/data`` beside the repository (as in the config)."""
    if os.environ.get(MIRROR_VARIABLE):
        return Path(os.environ[MIRROR_VARIABLE])
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


def is_poscar_name(path: Path) -> bool:
    """Whether a file's name says POSCAR or CONTCAR anywhere (``POSCAR``, ``x_POSCAR``, ``CONTCAR.relax``)."""
    return any(name in path.name.upper() for name in _POSCAR_NAMES)


def is_structure_file(path: Path) -> bool:
    """Whether a folder entry looks like a structure file (by suffix or POSCAR/CONTCAR name)."""
    return path.is_file() and (path.suffix.lower() in _SUFFIXES or is_poscar_name(path))


def read_structure_file(path: Path) -> Structure:
    """Parse one file by its suffix or name; :class:`InvalidRow` with the reason when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix == ".cif":
        return parse_cif(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise InvalidRow(f"unreadable file ({error.strerror})") from None
    if not text.strip():
        raise InvalidRow("empty file")
    if suffix == ".json":
        return parse_structure_json(text)
    if suffix in (".vasp", ".poscar") or is_poscar_name(path):
        try:
            return Structure.from_str(text, fmt="poscar")
        except Exception as error:  # pymatgen raises many types on malformed POSCARs
            raise InvalidRow(f"unreadable POSCAR ({type(error).__name__}: {error})") from None
    raise InvalidRow(f"unknown structure format {suffix or path.name!r} (expected CIF, POSCAR/CONTCAR or JSON)")


def _file_item(path: Path, label: str) -> Item:
    try:
        return Item(label, structure=read_structure_file(path))
    except InvalidRow as error:
        return Item(label, error=str(error))
    except Exception as error:  # noqa: BLE001 (a bad file must never stop the others)
        return Item(label, error=f"unreadable ({type(error).__name__}: {error})")


def resolve_mp_ids(mp_ids: Sequence[str], source: MPSource) -> dict[str, str | Exception]:
    """``{mp_id: Structure JSON}`` for the ids found, ``{mp_id: error}`` for the others."""
    if not mp_ids:
        return {}
    if source.mode == "mirror":
        folder = Path(source.mirror_dir) / "mp" / "structures"
        found: dict[str, str | Exception] = dict(read_mirror_structures(list(mp_ids), folder))
        missing = InvalidRow(f"unknown Materials Project id: not in the offline mirror {folder} (try --mp-source online)")
    elif source.mode == "online":
        try:
            found = dict(fetch_structures(list(dict.fromkeys(mp_ids)), source.endpoint, source.settings))
        except Exception as error:  # noqa: BLE001 (no key, network down: one reason for every id)
            return {mp_id: InvalidRow(f"Materials Project query failed ({type(error).__name__}: {error})") for mp_id in mp_ids}
        missing = InvalidRow("unknown Materials Project id: the Materials Project has no such material")
    else:
        raise ValueError(f"MPSource.mode must be 'mirror' or 'online', got {source.mode!r}")
    return {mp_id: found.get(mp_id, missing) for mp_id in mp_ids}


def read_inputs(args: Sequence[str], source: MPSource | None = None) -> list[Item]:
    """One :class:`Item` per structure named by ``args`` (files, folders, Materials Project ids), in order."""
    source = source or MPSource()
    plan: list[tuple[str, str, Path | None]] = []  # (kind, label, path)
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            entries = sorted(entry for entry in path.iterdir() if not entry.is_dir())
            if not any(map(is_structure_file, entries)):
                plan.append(("error", arg, None))
            plan.extend(("file" if is_structure_file(entry) else "skipped", str(entry), entry) for entry in entries)
        elif path.is_file():
            plan.append(("file", arg, path))
        elif MP_ID.match(arg):
            plan.append(("mp", arg, None))
        else:
            plan.append(("missing", arg, None))
    structures = resolve_mp_ids([label for kind, label, _ in plan if kind == "mp"], source)
    items = []
    for kind, label, path in plan:
        if kind == "file":
            items.append(_file_item(path, label))
        elif kind == "mp":
            found = structures[label]
            if isinstance(found, Exception):
                items.append(Item(label, error=str(found)))
            else:
                try:
                    items.append(Item(label, structure=parse_structure_json(found)))
                except InvalidRow as error:
                    items.append(Item(label, error=str(error)))
        elif kind == "skipped":
            items.append(Item(label, error=f"skipped: not a structure file by its name ({_EXPECTED})"))
        elif kind == "error":
            items.append(Item(label, error=f"folder holds no structure files ({_EXPECTED})"))
        else:
            items.append(Item(label, error="no such file or folder, and not a Materials Project id (mp-<number>)"))
    return items
