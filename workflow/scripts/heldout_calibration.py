"""Snakemake adapter: calibration of the ensemble spread and the domain threshold from the held-out folds."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.calibration import write_calibration

output = snakemake.output  # noqa: F821
write_calibration(
    snakemake.input,  # noqa: F821
    output.trust,
    output.table_csv,
    output.table_md,
    output.png,
    snakemake.params.error_factor,  # noqa: F821
)
