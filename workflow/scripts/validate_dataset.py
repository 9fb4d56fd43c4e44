"""Snakemake adapter: validate one dataset, quarantining the bad rows."""

import logging
import sys

smk = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(smk.log[0], "w")  # noqa: SIM115 (stays open for the whole script)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

from kappaflow.validation import Limits, validate_file

validate_file(
    smk.wildcards.dataset,
    smk.input.table,
    smk.output.structures,
    smk.output.rejected,
    Limits(min_distance=smk.params.min_distance, cutoff=smk.params.cutoff),
    workers=smk.threads,
    progress=True,
)
