"""config/README.md is the schema's rendering (kappaflow.config_docs), and the catalog metadata is valid."""

from __future__ import annotations

from pathlib import Path

import yaml
from kappaflow import config_docs


def test_config_readme_is_generated_from_the_schema(repo_root: Path) -> None:
    schema = yaml.safe_load((repo_root / config_docs.SCHEMA).read_text())
    rendered = config_docs.render(schema)
    assert (repo_root / config_docs.README).read_text() == rendered, (
        "config/README.md is stale: run `python -m kappaflow.config_docs` from the repository root"
    )
    keys = [row[0] for row in config_docs.rows(schema)]
    assert {"training.target", "scan.exclude_elements", "heldout.folds"} <= set(keys)
    assert all(f"| `{key}` |" in rendered for key in keys)


def test_rows_walk_nested_objects_in_order() -> None:
    schema = {"properties": {"a": {"type": "object", "description": "A", "properties": {
        "b": {"type": ["integer", "null"], "default": None, "description": "the\n  B"}}}}}
    assert list(config_docs.rows(schema)) == [("a", "object", "", "A"), ("a.b", "integer or null", "null", "the B")]


def test_workflow_catalog_metadata(repo_root: Path) -> None:
    meta = yaml.safe_load((repo_root / ".snakemake-workflow-catalog.yml").read_text())
    assert meta["usage"]["software-stack-deployment"]["conda"] is True and meta["usage"]["report"] is True
    assert (repo_root / "Snakefile").is_file(), "the catalog finds the Snakefile at the top level"
