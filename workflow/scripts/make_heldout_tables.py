"""Snakemake adapter: the held-out table from every fold's predictions."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.files import write_heldout_tables

write_heldout_tables(
    snakemake.input.folds,  # noqa: F821
    snakemake.input.matches,  # noqa: F821
    snakemake.output.predictions,  # noqa: F821
    snakemake.output.table_csv,  # noqa: F821
    snakemake.output.table_md,  # noqa: F821
)
