"""kappaflow: two-stage transfer learning of lattice thermal conductivity.

Modules, one job each:

- ``sources``: AFLOW AGL, Materials Project and pretrained-model acquisition (online or mirror).
- ``validation``: per-row checks with a quarantine table.
- ``matching``: AFLOW ↔ high-quality dataset structure matching.
- ``graphs``: structure → graph arrays → parquet → PyG batches.
- ``backbone``: the pretrained MEGNet loader with the original aggregation convention.
- ``model``: backbone + MLP head.
- ``training``: splits, target scaling, Lightning module and runner.
- ``evaluation``: metrics and tables.
- ``figures``: paper figures.
- ``predict`` / ``cli``: the ``kappaflow`` command.
- ``shipped``: the model shipped in the package (export, card, check predictions).
"""

from __future__ import annotations

__version__ = "0.1.0"
