"""Snakemake adapter: the held-out table from every fold's predictions."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.evaluation.files import write_heldout_tables

write_heldout_tables(
    snakemake.input.folds,  # noqa: F821
    snakemake.input.matches,  # noqa: F821
    snakemake.output.predictions,  # noqa: F821
    snakemake.output.table_csv,  # noqa: F821
    snakemake.output.table_md,  # noqa: F821
)
