"""Snakemake adapter: AFLOW AGL labels and CIFs (mirror or AFLUX)."""

import logging
import sys

from kappaflow.sources.aflow import acquire_aflow_agl

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
logging.captureWarnings(True)

acquire_aflow_agl(
    snakemake.params.source,  # noqa: F821
    labels_csv=snakemake.output.labels,  # noqa: F821
    manifest_csv=snakemake.output.manifest,  # noqa: F821
    subset=snakemake.params.subset,  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
