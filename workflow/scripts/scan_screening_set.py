"""Snakemake adapter: the screening set (mirror CSV or online Materials Project query) for the scan."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.scan import write_screening_set  # noqa: E402

write_screening_set(
    snakemake.output[0],  # noqa: F821
    source=snakemake.params.source,  # noqa: F821
    screening_csv=snakemake.input[0] if snakemake.input else None,  # noqa: F821
    limit=snakemake.params.limit,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
    filters=snakemake.params.filters,  # noqa: F821
)
