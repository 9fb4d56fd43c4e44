"""Snakemake adapter: validate one dataset, quarantining the bad rows."""

from kappaflow.logs import log_to_file

smk = snakemake  # noqa: F821 (injected by Snakemake)
log_to_file(smk.log[0])

from kappaflow.validation import Limits, validate_file

validate_file(
    smk.wildcards.dataset,
    smk.input.table,
    smk.output.structures,
    smk.output.rejected,
    Limits(min_distance=smk.params.min_distance, cutoff=smk.params.cutoff),
    workers=smk.threads,
    progress=True,
    manifest=smk.input.get("manifest"),
)
