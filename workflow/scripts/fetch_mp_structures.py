"""Snakemake adapter: one high-quality dataset's labels with Materials Project structures."""

from kappaflow.logs import log_to_file
from kappaflow.sources.materials_project import acquire_mp_dataset

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

acquire_mp_dataset(
    smk.params.source,
    labels=smk.input.labels[0] if smk.input.labels else smk.params.labels_url,
    parquet=smk.output.table,
    manifest=smk.output.manifest,
    mirror_files=list(smk.input.structures),
    online=smk.params.online,
)
