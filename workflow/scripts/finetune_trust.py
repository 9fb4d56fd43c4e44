"""Snakemake adapter: a fine-tuned backbone's ensemble's domain.parquet and trust.json (rule finetune_trust), its
calibration from its own held-out fold ensembles → kappaflow.calibration, kappaflow.trust."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import pandas as pd
from kappaflow.calibration import cross_fitted, trust_records
from kappaflow.trust import write_ensemble_trust

smk = snakemake  # noqa: F821
params = smk.params.calibration
calibrations = None
if "heldout" in smk.input.keys():
    calibrations = trust_records(cross_fitted(pd.read_parquet(smk.input.heldout)), params["error_factor"])
write_ensemble_trust(
    smk.input.run_jsons,
    smk.input.features,
    calibrations,
    params["uncalibrated"],
    smk.output.domain,
    smk.output.trust,
)
