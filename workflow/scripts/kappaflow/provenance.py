"""Which kappaflow ran: its version and the git commit of the checkout it was imported from."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
GIT_TIMEOUT_S = 10


def _git(*args: str) -> str | None:
    """Output of ``git -C PACKAGE_DIR args``; None when git is missing, fails or this is no checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def package_version() -> str | None:
    """The version of the imported package: its own ``__version__``, else the installed metadata's.

    ``__version__`` comes first: an editable install's metadata describes the checkout it was
    installed from, which need not be the one imported (a second clone).
    """
    import kappaflow

    version = getattr(kappaflow, "__version__", None)
    if version is not None:
        return str(version)
    try:
        return metadata.version("kappaflow")
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict[str, object]:
    """``{version, commit, dirty, package_path}``; commit and dirty are None outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if head else None
    return {
        "version": package_version(),
        "commit": head.strip() if head else None,
        "dirty": bool(status.strip()) if status is not None else None,
        "package_path": str(PACKAGE_DIR),
    }


def describe(info: dict[str, object] | None = None) -> str:
    """One line, e.g. ``kappaflow 0.1.0 commit abc123… (dirty) from /path/to/kappaflow``."""
    info = provenance() if info is None else info
    if info["commit"] is None:
        where = "(not a git checkout)"
    else:
        where = f"commit {info['commit']}" + (" (dirty)" if info["dirty"] else "")
    return f"kappaflow {info['version']} {where} from {info['package_path']}"
