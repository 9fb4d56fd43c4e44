"""Snakemake adapter: all runs' predictions, statuses and loss histories in three files."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.files import collect

collect(
    snakemake.input.runs,  # noqa: F821
    snakemake.input.baseline,  # noqa: F821
    snakemake.input.trust,  # noqa: F821
    snakemake.output.predictions,  # noqa: F821
    snakemake.output.runs,  # noqa: F821
    snakemake.output.history,  # noqa: F821
)
