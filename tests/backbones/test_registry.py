"""BACKBONES and load_backbone: stable names, the right constructor, clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kappaflow.backbones import BACKBONES, load_backbone
from kappaflow.backbones._matgl import MatglBackbone
from kappaflow.backbones.megnet import MEGNetEform

NAMES = {
    "megnet-2018-eform", "m3gnet-2018-eform", "tensornet-matpes-2025",
    "m3gnet-matpes-2025", "chgnet-0.3.0", "sevennet-0",
}  # fmt: skip


def test_names_are_the_stable_config_names() -> None:
    assert set(BACKBONES) == NAMES
    assert all(cls.spec.name == name for name, cls in BACKBONES.items())


def test_specs_are_consistent(pretrained_root: Path) -> None:
    for cls in BACKBONES.values():
        spec = cls.spec
        assert spec.cutoff > 0 and spec.representation_dim > 0 and spec.reference.endswith(".")
        assert len(set(spec.elements)) == len(spec.elements) >= 89
        if issubclass(cls, MatglBackbone):
            assert (pretrained_root / spec.source / "model.json").is_file()
        else:
            assert importlib.util.find_spec(spec.source) is not None


def test_load_backbone_passes_the_mirror_to_matgl_backbones(pretrained_root: Path) -> None:
    backbone = load_backbone("megnet-2018-eform", pretrained_root)
    assert isinstance(backbone, MEGNetEform)
    assert backbone.model_dir == pretrained_root / "MEGNet-MP-2018.6.1-Eform"


def test_unknown_names_and_missing_folders_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: megnet-2018-eform, m3gnet-2018-eform"):
        load_backbone("megnet", tmp_path)
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_backbone("tensornet-matpes-2025", tmp_path)


def test_the_workflow_knows_every_backbone_and_its_folder(repo_root: Path) -> None:
    """protocol.BACKBONE_FOLDERS (what the rules read without importing torch) and the schema's enum match the
    registry: every backbone can be configured, and the matgl ones fetch the folder they load."""
    import yaml

    from kappaflow.protocol import BACKBONE_FOLDERS

    assert set(BACKBONE_FOLDERS) == set(BACKBONES)
    for name, cls in BACKBONES.items():
        assert BACKBONE_FOLDERS[name] == (cls.spec.source if issubclass(cls, MatglBackbone) else None), name
    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["model"]["properties"]["backbones"]["items"]["enum"] == list(BACKBONES)
