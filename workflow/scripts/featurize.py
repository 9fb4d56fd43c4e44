"""Snakemake adapter: validated structures → crystal graph table."""

from kappaflow.logs import log_to_file

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

from kappaflow.graphs import featurize_file

featurize_file(smk.input[0], smk.output[0], smk.params.cutoff, workers=smk.threads, progress=True)
