"""Snakemake adapter: the low-κ candidates of every scanned ensemble."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.scan import write_candidates  # noqa: E402

write_candidates(
    snakemake.input[0],  # noqa: F821
    snakemake.output[0],  # noqa: F821
    n_candidates=snakemake.params.n_candidates,  # noqa: F821
    max_rel_std=snakemake.params.max_rel_std,  # noqa: F821
)
