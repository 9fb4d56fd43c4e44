"""Snakemake adapter: one figure (PNG and PDF)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.figures import draw

draw(snakemake.wildcards.figure, snakemake.input[0], snakemake.output.png)  # noqa: F821
