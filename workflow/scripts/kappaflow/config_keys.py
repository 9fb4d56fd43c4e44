"""Configuration keys the schema does not declare: a typo stops the run with its name and file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


def unknown_keys(data: Any, schema: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of ``data`` that ``schema`` rejects as ``additionalProperties: false``, at any depth."""
    if not isinstance(data, Mapping):
        return []
    properties = schema.get("properties", {})
    found = []
    for key, value in data.items():
        if key in properties:
            found += unknown_keys(value, properties[key], (*path, str(key)))
        elif schema.get("additionalProperties") is False:
            found.append((*path, str(key)))
    return found


def _sets(data: Any, path: tuple[str, ...]) -> bool:
    """Whether the nested mapping ``data`` holds the key path ``path``."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return False
        data = data[key]
    return True


def unknown_keys_message(
    config: Mapping[str, Any],
    schema_path: str | Path,
    configfiles: Iterable[str | Path],
    overrides: Mapping[str, Any],
) -> str | None:
    """A message naming every unknown key of ``config`` and the config file(s) that set it; None if none.

    ``configfiles``: the files merged into ``config``; ``overrides``: Snakemake's ``--config`` values.
    """
    schema_path = Path(schema_path)
    unknown = unknown_keys(config, yaml.safe_load(schema_path.read_text()))
    if not unknown:
        return None
    sources = {str(path): yaml.safe_load(Path(path).read_text()) for path in configfiles}
    sources["--config"] = overrides
    lines = [f"unknown configuration key(s), not in {schema_path} (a typo?):"]
    for path in unknown:
        where = ", ".join(name for name, data in sources.items() if _sets(data, path)) or "the workflow"
        lines.append(f"  {'.'.join(path)} (set in {where})")
    return "\n".join(lines)
