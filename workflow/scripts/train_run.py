"""Snakemake adapter: one training run (rules train and train_stage1) → kappaflow.training.runner."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch
from kappaflow.protocol import graph_paths
from kappaflow.training.runner import RunSpec, train_run

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
train_run(
    RunSpec(
        step=smk.params.step,
        train_on=smk.params.train_on,
        seed=int(smk.wildcards.seed),
        out_dir=str(Path(smk.output.run_json).parent),
        graph_paths=graph_paths(smk.input),
        pretrained_dir=str(Path(smk.input.pretrained_json).parent),
        init=smk.params.init,
        init_checkpoint=str(smk.input.stage1) if "stage1" in smk.input.keys() else None,
        epochs=int(smk.params.epochs),
        **smk.params.options,
    )
)
