"""Snakemake adapter: the scan figure (predicted κ distribution with candidates; mean vs relative std)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.scan import scan_figure  # noqa: E402

scan_figure(
    snakemake.input.predictions,  # noqa: F821
    snakemake.input.candidates,  # noqa: F821
    max_rel_std=snakemake.params.max_rel_std,  # noqa: F821
    path=snakemake.output.png,  # noqa: F821
)
