"""Snakemake adapter: composition-only baseline under the paper's protocol (same splits as the network)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.baseline import write_paper_protocol
from kappaflow.protocol import graph_paths

inputs, params = snakemake.input, snakemake.params  # noqa: F821
write_paper_protocol(
    graph_paths(inputs),
    params.train_sets,
    params.test_sets,
    params.seeds,
    params.val_fraction,
    snakemake.output[0],  # noqa: F821
    n_estimators=params.n_estimators,
    min_samples_leaf=params.min_samples_leaf,
    n_jobs=snakemake.threads,  # noqa: F821
)
