"""Shared fixtures: the repository, the offline mirror and the pretrained model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = (REPO_ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    if not (MIRROR_DIR / "README.md").is_file():
        pytest.fail(f"the offline data mirror is expected at {MIRROR_DIR}")
    return MIRROR_DIR


@pytest.fixture(scope="session")
def pretrained_dir(mirror_dir: Path) -> Path:
    return mirror_dir / "pretrained" / "MEGNet-MP-2018.6.1-Eform"
