"""The config schema: every key described, unknown keys (typos) rejected by name and file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from kappaflow.config_keys import unknown_keys, unknown_keys_message

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _objects(schema: dict, path: str = "config") -> list[tuple[str, dict]]:
    """Every (path, subschema) of the schema's object tree, the top level included."""
    found = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        found += _objects(sub, f"{path}.{key}")
    return found


def test_every_property_is_described_and_every_object_closed() -> None:
    nodes = _objects(yaml.safe_load(SCHEMA.read_text()))
    assert [path for path, sub in nodes[1:] if not str(sub.get("description", "")).strip()] == []
    objects = [(path, sub) for path, sub in nodes if sub.get("type") == "object"]
    assert objects[0][0] == "config" and len(objects) > 1
    assert [path for path, sub in objects if sub.get("additionalProperties") is not False] == []


def test_shipped_configs_have_no_unknown_key() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    configs = sorted((REPO_ROOT / "config").glob("*.yaml"))
    assert {"config.yaml", "smoke.yaml"} <= {path.name for path in configs}
    for path in configs:
        assert unknown_keys(yaml.safe_load(path.read_text()), schema) == [], path.name


def test_message_names_each_unknown_key_and_its_source(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainig: {epochs: 2}\ntraining: {epoch: 3, seeds: [1]}\n")
    config = {**yaml.safe_load(typo.read_text()), "scan": {"limitt": 5}}
    message = unknown_keys_message(config, SCHEMA, [typo], {"scan": {"limitt": 5}})
    assert message is not None
    assert f"trainig (set in {typo})" in message and f"training.epoch (set in {typo})" in message
    assert "scan.limitt (set in --config)" in message and "seeds" not in message
    assert unknown_keys_message({"training": {"seeds": [1]}}, SCHEMA, [], {}) is None


def test_dry_run_with_a_typo_stops_naming_the_key(mirror_dir: Path, tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainig: {epochs: 2}\n")
    cmd = [
        "timeout", "-k", "10", "120",
        sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(tmp_path / "work"),
        "--configfile", str(REPO_ROOT / "config" / "smoke.yaml"), str(typo),
        "--config", f"mirror_dir={mirror_dir}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f"trainig (set in {typo})" in output, output
