"""Snakemake adapter: train one held-out fold and predict its outer test part."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.heldout import train_fold

inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards  # noqa: F821
train_fold(
    wildcards.step,
    wildcards.train_on,
    int(wildcards.fold),
    params.folds,
    params.seed,
    {key: inputs[key] for key in ("aflow", "dataset1", "dataset2") if key in inputs.keys()},  # noqa: SIM118 (Namedlist: `in` tests values)
    params.pretrained_dir,
    params.work_dir,
    snakemake.output[0],  # noqa: F821
    stage1_checkpoint=inputs.stage1[0] if inputs.stage1 else None,
    **params.run_options,
)
