"""Checksums of acquired files and label rows (what the acquisition manifests record), and a copy
that only rewrites a file whose content changed."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

#: Separates the fields of a label row before hashing (never part of a CSV field).
_FIELD_SEPARATOR = "\x1f"


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB blocks (graph tables and checkpoints can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """The sha256 (hex) of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()


def row_sha256s(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """One sha256 per row of ``frame`` over the text of its ``columns`` (a missing value hashes as ``<NA>``)."""
    return [
        text_sha256(_FIELD_SEPARATOR.join("<NA>" if pd.isna(value) else str(value) for value in row))
        for row in frame[list(columns)].itertuples(index=False)
    ]


def copy_if_changed(src: Path, dest: Path) -> bool:
    """Copy ``src`` to ``dest`` (through ``<dest>.part``) unless ``dest`` has the same sha256; whether it did."""
    if dest.is_file() and file_sha256(dest) == file_sha256(src):
        return False
    part = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, part)
    os.replace(part, dest)
    return True
