"""Snakemake adapter: find the AFLOW entries that are Dataset1/Dataset2 materials."""

import logging
import sys

smk = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(smk.log[0], "w")  # noqa: SIM115 (stays open for the whole script)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

from kappaflow.matching import match_files

match_files(smk.input.aflow, smk.input.hq, smk.output[0])
