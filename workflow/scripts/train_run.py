"""Snakemake adapter: one training run (rules train and train_stage1) → kappaflow.training.runner."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch
from kappaflow.training.options import spec_options
from kappaflow.training.runner import RunSpec, train_run
from kappaflow.training.sets import graph_paths

smk = snakemake  # noqa: F821
training = smk.params.training
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
        test_sets=list(smk.params.test_sets),
        epochs=int(smk.params.epochs),
        **spec_options(training),
    ),
    eval_batch_size=int(training["eval_batch_size"]),
)
