"""``config/README.md`` rendered from the config schema's descriptions, so the two cannot drift.

Regenerate with ``python -m kappaflow.config_docs`` (from the repository root); a test checks that the
committed file equals the rendering.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path("workflow/schemas/config.schema.yaml")
README = Path("config/README.md")
HEADER = """# Configuration

`config/config.yaml` is the paper configuration; `config/smoke.yaml` the tiny one the tests run. Both are
validated against `workflow/schemas/config.schema.yaml`, which fills in every default and rejects unknown keys.
Override keys with an extra file: `snakemake --configfile config/config.yaml my.yaml -- <targets>`.

This file is generated from the schema (`python -m kappaflow.config_docs`); edit the schema's descriptions,
not this file.

| key | type | default | description |
| --- | --- | --- | --- |
"""


def _type(spec: Mapping[str, Any]) -> str:
    kinds = spec.get("type", "")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if "enum" in spec:
        text += ": " + ", ".join(map(str, spec["enum"]))
    if spec.get("type") == "array" and "enum" in spec.get("items", {}):
        text += " of " + ", ".join(map(str, spec["items"]["enum"]))
    return text


def rows(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """``(key path, type, default, description)`` of every property, depth first, in schema order."""
    for name, spec in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        default = "" if spec.get("type") == "object" else json.dumps(spec.get("default"), ensure_ascii=False)
        yield key, _type(spec), default, " ".join(str(spec.get("description", "")).split())
        yield from rows(spec, f"{key}.")


def render(schema: Mapping[str, Any]) -> str:
    """The README's text for ``schema``."""
    lines = [f"| `{key}` | {kind} | {f'`{default}`' if default else ''} | {text.replace('|', '/')} |"
             for key, kind, default, text in rows(schema)]
    return HEADER + "\n".join(lines) + "\n"


def main(root: str | Path = ".") -> None:
    """Write ``config/README.md`` under ``root`` from its schema."""
    root = Path(root)
    (root / README).write_text(render(yaml.safe_load((root / SCHEMA).read_text())))


if __name__ == "__main__":
    main(*sys.argv[1:])
