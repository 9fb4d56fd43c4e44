"""The pretrained MEGNet files: download with retries, or mirror copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_servers import MIRROR, static_server
from kappaflow.sources.http import HttpSettings
from kappaflow.sources.pretrained import BACKBONE_FILES, MODEL_FILES, acquire_pretrained

MODEL = MIRROR / "pretrained" / "MEGNet-MP-2018.6.1-Eform"


@pytest.mark.network
def test_download_with_retries(tmp_path: Path, fast: HttpSettings) -> None:
    files = {f"/models/Eform/{name}": (MODEL / name).read_bytes() for name in MODEL_FILES}
    with static_server(files) as server:
        server.inject("/state.pt", "500", "cut")
        online = {
            "pretrained_url": f"{server.url}/models/Eform/",
            "timeout_s": 1,
            "retries": 3,
            "backoff_s": 0.001,
        }
        acquire_pretrained("online", tmp_path / "Eform", online=online)
        assert len(server.requests_for("/state.pt")) == 3
    for name in MODEL_FILES:
        assert (tmp_path / "Eform" / name).read_bytes() == (MODEL / name).read_bytes()


@pytest.mark.network
def test_git_lfs_pointer_is_refused(tmp_path: Path, fast: HttpSettings) -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 796373\n"
    with static_server({"/m/model.json": b"{}", "/m/state.pt": pointer}) as server:
        online = {"pretrained_url": f"{server.url}/m", "timeout_s": 1, "retries": 0, "backoff_s": 0}
        with pytest.raises(ValueError, match="state.pt is a Git LFS pointer"):
            acquire_pretrained("online", tmp_path, online=online)


def test_mirror_copy(tmp_path: Path) -> None:
    acquire_pretrained("mirror", tmp_path / "Eform", mirror_dir=MODEL)
    assert sorted(p.name for p in (tmp_path / "Eform").iterdir()) == sorted(MODEL_FILES)


def test_unknown_source() -> None:
    with pytest.raises(ValueError, match="source 'ftp'"):
        acquire_pretrained("ftp", "x")


@pytest.mark.network
def test_a_backbone_folder_downloads_from_its_url(tmp_path: Path, fast: HttpSettings) -> None:
    """The other matgl backbones: ``<pretrained_models_url>/<folder>/`` with the three files matgl.load_model reads."""
    folder = MIRROR / "pretrained" / "TensorNet-MatPES-PBE-v2025.1-PES"
    files = {f"/models/TensorNet/{name}": (folder / name).read_bytes() for name in BACKBONE_FILES}
    with static_server(files) as server:
        online = {"pretrained_url": "http://127.0.0.1:9/unused", "timeout_s": 1, "retries": 0, "backoff_s": 0}
        acquire_pretrained("online", tmp_path, online=online, url=f"{server.url}/models/TensorNet",
                           files=BACKBONE_FILES)
    for name in BACKBONE_FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()
