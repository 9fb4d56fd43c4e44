"""Snakemake adapter: gather the per-dataset rejection tables into one."""

from kappaflow.logs import log_to_file

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

from kappaflow.validation import gather_rejected

gather_rejected(smk.input, smk.output[0])
