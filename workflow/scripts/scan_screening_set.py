"""Snakemake adapter: the screening set (mirror CSV or online Materials Project query) for the scan."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.scan import write_screening_set  # noqa: E402

write_screening_set(
    snakemake.output[0],  # noqa: F821
    source=snakemake.params.source,  # noqa: F821
    screening_csv=snakemake.input[0] if snakemake.input else None,  # noqa: F821
    limit=snakemake.params.limit,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
    filters=snakemake.params.filters,  # noqa: F821
)
