"""Snakemake adapter: a fine-tuned backbone's held-out fold ensembles on one set (rule finetune_heldout_ensemble)
→ kappaflow.training.finetune.heldout_ensemble."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import pandas as pd
from kappaflow.training.finetune import heldout_ensemble

smk = snakemake  # noqa: F821
Path(smk.output[0]).parent.mkdir(parents=True, exist_ok=True)
heldout_ensemble(
    [pd.read_parquet(path) for path in smk.input.predictions],
    [pd.read_parquet(path) for path in smk.input.features],
).to_parquet(smk.output[0], index=False)
