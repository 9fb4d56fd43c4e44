"""Snakemake adapter: composition-only baseline on every held-out fold."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.heldout import write_baseline_heldout
from kappaflow.protocol import graph_paths

inputs, params = snakemake.input, snakemake.params  # noqa: F821
write_baseline_heldout(
    graph_paths(inputs),
    params.train_sets,
    params.folds,
    params.seed,
    params.val_fraction,
    snakemake.output[0],  # noqa: F821
    n_estimators=params.n_estimators,
    min_samples_leaf=params.min_samples_leaf,
    n_jobs=snakemake.threads,  # noqa: F821
)
