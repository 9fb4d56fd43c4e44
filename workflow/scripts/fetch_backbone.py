"""Snakemake adapter: a matgl backbone's model folder (mirror or download)."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.sources.pretrained import BACKBONE_FILES, acquire_pretrained

smk = snakemake  # noqa: F821
online = smk.params.online
acquire_pretrained(
    smk.params.source,
    dest_dir=Path(smk.output[0]).parent,
    mirror_dir=smk.params.mirror_dir,
    online=online,
    url=f"{online['pretrained_models_url'].rstrip('/')}/{smk.wildcards.folder}" if online else None,
    files=BACKBONE_FILES,
)
