"""Snakemake adapter: an ensemble's domain.parquet and trust.json (kappaflow.trust)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import json
from pathlib import Path

from kappaflow.trust import write_ensemble_trust

inputs = snakemake.input  # noqa: F821
write_ensemble_trust(
    inputs.run_jsons,
    inputs.features,
    json.loads(Path(inputs.heldout_trust).read_text()) if "heldout_trust" in inputs.keys() else None,
    snakemake.params.uncalibrated,  # noqa: F821
    snakemake.output.domain,  # noqa: F821
    snakemake.output.trust,  # noqa: F821
)
