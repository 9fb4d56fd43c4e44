"""Snakemake adapter: composition-only baseline on every held-out fold."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from kappaflow.heldout import write_baseline_heldout

inputs, params = snakemake.input, snakemake.params  # noqa: F821
write_baseline_heldout(
    {key: inputs[key] for key in ("aflow", "dataset1", "dataset2") if key in inputs.keys()},  # noqa: SIM118 (Namedlist: `in` tests values)
    params.train_sets,
    params.folds,
    params.seed,
    params.val_fraction,
    snakemake.output[0],  # noqa: F821
    n_estimators=params.n_estimators,
    min_samples_leaf=params.min_samples_leaf,
    n_jobs=snakemake.threads,  # noqa: F821
)
