"""Snakemake adapter: validated structures → crystal graph table."""

import logging
import sys

smk = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(smk.log[0], "w")  # noqa: SIM115 (stays open for the whole script)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

from kappaflow.graphs import featurize_file

featurize_file(smk.input[0], smk.output[0], smk.params.cutoff, workers=smk.threads, progress=True)
