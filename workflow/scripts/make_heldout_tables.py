"""Snakemake adapter: the held-out table from every fold's ensemble and member runs."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.files import write_heldout_tables

inputs, output = snakemake.input, snakemake.output  # noqa: F821
write_heldout_tables(
    inputs.ensembles,
    inputs.runs,
    inputs.baseline,
    inputs.matches,
    output.predictions,
    output.per_run,
    output.table_csv,
    output.table_md,
)
