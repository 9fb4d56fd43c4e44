"""Snakemake adapter: join the scan chunks, check rows in = predicted + rejected."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.scan import gather_scan  # noqa: E402

gather_scan(
    snakemake.input.screening,  # noqa: F821
    prediction_parts=snakemake.input.predictions,  # noqa: F821
    rejected_parts=snakemake.input.rejected,  # noqa: F821
    predictions_out=snakemake.output.predictions,  # noqa: F821
    rejected_out=snakemake.output.rejected,  # noqa: F821
)
