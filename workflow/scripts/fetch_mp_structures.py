"""Snakemake adapter: one high-quality dataset's labels with Materials Project structures."""

from kappaflow.logs import log_to_file
from kappaflow.sources.materials_project import acquire_mp_dataset

log_to_file(snakemake.log[0])  # noqa: F821

acquire_mp_dataset(
    snakemake.params.source,  # noqa: F821
    labels=snakemake.params.labels,  # noqa: F821
    parquet=snakemake.output[0],  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
