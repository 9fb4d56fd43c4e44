"""Pretrained models in matgl's format (``model.json``, ``state.pt`` and, for ``matgl.load_model``, ``model.pt``),
downloaded or copied.

``kappaflow.backbone.load_pretrained_megnet`` builds MEGNet from ``model.json`` + ``state.pt``; the other matgl
backbones (:mod:`kappaflow.backbones`) read their folder's three files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kappaflow.sources.http import HttpSettings, download, make_session

log = logging.getLogger(__name__)

MODEL_FILES = ("model.json", "state.pt")
#: What ``matgl.load_model`` reads (the backbones other than MEGNet).
BACKBONE_FILES = ("model.json", "model.pt", "state.pt")


def fetch_pretrained(
    base_url: str, dest_dir: str | Path, settings: HttpSettings, files: Sequence[str] = MODEL_FILES
) -> None:
    """Download ``<base_url>/<file>`` of every file of ``files`` into ``dest_dir``.

    Raises:
        ValueError: a file is a Git LFS pointer instead of its content.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    session = make_session(settings)
    for name in files:
        url = f"{base_url.rstrip('/')}/{name}"
        download(session, url, dest_dir / name, settings)
        with open(dest_dir / name, "rb") as handle:
            if handle.read(len(b"version https://git-lfs")) == b"version https://git-lfs":
                raise ValueError(
                    f"{url} is a Git LFS pointer, not the file; point pretrained_url at its media URL"
                )
        log.info("downloaded %s (%d bytes)", url, (dest_dir / name).stat().st_size)


def copy_pretrained(mirror_dir: str | Path, dest_dir: str | Path, files: Sequence[str] = MODEL_FILES) -> None:
    """Copy ``files`` from the mirror's model folder into ``dest_dir``."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(Path(mirror_dir) / name, dest_dir / name)
        log.info("copied %s", Path(mirror_dir) / name)


def acquire_pretrained(
    source: str,
    dest_dir: str | Path,
    mirror_dir: str | Path | None = None,
    online: dict[str, Any] | None = None,
    url: str | None = None,
    files: Sequence[str] = MODEL_FILES,
) -> None:
    """The pretrained model files from ``source``: ``"mirror"`` or ``"online"``.

    Args:
        source: ``"mirror"`` copies from ``mirror_dir``; ``"online"`` downloads from ``url`` (default:
            ``online["pretrained_url"]``, MEGNet's folder).
        dest_dir: output folder.
        mirror_dir: the mirror's model folder.
        online: the config's ``online`` settings: ``pretrained_url``, ``timeout_s``, ``retries``,
            ``backoff_s``.
        url: the model folder's URL (the backbones other than MEGNet).
        files: the files of the folder to copy or download.
    """
    if source == "mirror" and mirror_dir is not None:
        copy_pretrained(mirror_dir, dest_dir, files)
    elif source == "online" and online is not None:
        fetch_pretrained(url or online["pretrained_url"], dest_dir, HttpSettings.from_config(online), files)
    else:
        raise ValueError(
            f"source {source!r}: expected 'mirror' with mirror_dir, or 'online' with its settings"
        )
