"""Snakemake adapter: the pretrained MEGNet files (mirror or download)."""

import logging
import sys
from pathlib import Path

from kappaflow.sources.pretrained import acquire_pretrained

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake)
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
logging.captureWarnings(True)

acquire_pretrained(
    snakemake.params.source,  # noqa: F821
    dest_dir=Path(snakemake.output.model_json).parent,  # noqa: F821
    mirror_dir=snakemake.params.mirror_dir,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
)
