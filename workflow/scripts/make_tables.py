"""Snakemake adapter: the MAPE table and its comparison with the published values."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.files import write_mape_tables

out = snakemake.output  # noqa: F821
write_mape_tables(
    snakemake.input.predictions,  # noqa: F821
    snakemake.input.published,  # noqa: F821
    out.per_run,
    out.table_csv,
    out.table_md,
    out.comparison_csv,
    out.comparison_md,
)
