"""Snakemake adapter: all runs' predictions, statuses and loss histories in three files."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.evaluation.files import collect

collect(
    snakemake.input.runs,  # noqa: F821
    snakemake.input.baseline,  # noqa: F821
    snakemake.output.predictions,  # noqa: F821
    snakemake.output.runs,  # noqa: F821
    snakemake.output.history,  # noqa: F821
)
