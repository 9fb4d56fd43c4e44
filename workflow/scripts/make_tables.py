"""Snakemake adapter: the MAPE table and its comparison with the published values."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

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
