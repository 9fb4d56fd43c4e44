"""Snakemake adapter: find the AFLOW entries that are Dataset1/Dataset2 materials."""

from kappaflow.logs import log_to_file

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

from kappaflow.matching import match_files

match_files(smk.input.aflow, smk.input.hq, smk.output[0])
