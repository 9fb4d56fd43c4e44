"""Snakemake adapter: one high-quality dataset's labels with Materials Project structures."""

import logging
import sys

from kappaflow.sources.materials_project import acquire_mp_dataset

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
logging.captureWarnings(True)

acquire_mp_dataset(
    snakemake.params.source,  # noqa: F821
    labels=snakemake.params.labels,  # noqa: F821
    parquet=snakemake.output[0],  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
