"""The config schema's defaults, for tests that build run specs the way the workflow does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kappaflow.training.options import spec_options

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def run_options(**overrides: Any) -> dict[str, Any]:
    """:func:`spec_options` of the schema's ``training`` defaults, with ``overrides``."""
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]["training"]["properties"]
    return {**spec_options({name: spec["default"] for name, spec in properties.items()}), **overrides}
