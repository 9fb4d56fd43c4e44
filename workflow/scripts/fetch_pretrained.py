"""Snakemake adapter: the pretrained MEGNet files (mirror or download)."""

from pathlib import Path

from kappaflow.logs import log_to_file
from kappaflow.sources.pretrained import acquire_pretrained

log_to_file(snakemake.log[0])  # noqa: F821

acquire_pretrained(
    snakemake.params.source,  # noqa: F821
    dest_dir=Path(snakemake.output.model_json).parent,  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
