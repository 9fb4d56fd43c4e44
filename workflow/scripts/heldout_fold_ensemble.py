"""Snakemake adapter: one held-out fold's ensemble (mean, log spread, distance to the fold's training materials)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.heldout import fold_ensemble

fold_ensemble(snakemake.input.predictions, snakemake.input.features, snakemake.output[0])  # noqa: F821
