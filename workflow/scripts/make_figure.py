"""Snakemake adapter: one figure (PNG and PDF)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.figures import draw

draw(snakemake.wildcards.figure, snakemake.input[0], snakemake.output.png)  # noqa: F821
