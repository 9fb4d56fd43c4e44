"""Snakemake adapter: AFLOW AGL labels and CIFs (mirror or AFLUX)."""

from kappaflow.logs import log_to_file
from kappaflow.sources.aflow import acquire_aflow_agl

log_to_file(snakemake.log[0])  # noqa: F821

acquire_aflow_agl(
    snakemake.params.source,  # noqa: F821
    labels_csv=snakemake.output.labels,  # noqa: F821
    manifest_csv=snakemake.output.manifest,  # noqa: F821
    subset=snakemake.params.subset,  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
