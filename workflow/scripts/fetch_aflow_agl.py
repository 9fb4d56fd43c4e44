"""Snakemake adapter: AFLOW AGL labels and CIFs (mirror or AFLUX)."""

from pathlib import Path

from kappaflow.logs import log_to_file
from kappaflow.sources.aflow import acquire_aflow_agl

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

acquire_aflow_agl(
    smk.params.source,
    labels_csv=smk.output.labels,
    manifest_csv=smk.output.manifest,
    subset=smk.params.subset,
    mirror_dir=Path(smk.input.mirror_labels[0]).parent if smk.input.mirror_labels else None,
    online=smk.params.online,
)
