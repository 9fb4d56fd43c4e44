"""Snakemake adapter: train one member of a held-out fold's ensemble and predict the outer test part."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.heldout import train_fold
from kappaflow.protocol import graph_paths

inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards  # noqa: F821
train_fold(
    wildcards.step,
    wildcards.train_on,
    int(wildcards.fold),
    params.folds,
    params.fold_seed,
    int(wildcards.seed),
    graph_paths(inputs),
    params.pretrained_dir,
    params.work_dir,
    snakemake.output.predictions,  # noqa: F821
    snakemake.output.features,  # noqa: F821
    stage1_checkpoint=inputs.stage1 if "stage1" in inputs.keys() else None,
    **params.run_options,
)
