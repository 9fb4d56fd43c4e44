"""Snakemake adapter: gather the per-dataset rejection tables into one."""

import logging
import sys

smk = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(smk.log[0], "w")  # noqa: SIM115 (stays open for the whole script)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

from kappaflow.validation import gather_rejected

gather_rejected(smk.input, smk.output[0])
