"""Snakemake adapter: the scan figure (predicted κ distribution with candidates; mean vs relative std)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.scan import scan_figure  # noqa: E402

scan_figure(
    snakemake.input.predictions,  # noqa: F821
    snakemake.input.candidates,  # noqa: F821
    max_rel_std=snakemake.params.max_rel_std,  # noqa: F821
    path=snakemake.output.png,  # noqa: F821
)
