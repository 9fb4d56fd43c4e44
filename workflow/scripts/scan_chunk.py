"""Snakemake adapter: predict one chunk of the screening set with every scanned ensemble."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch  # noqa: E402

from kappaflow.predict import resolve_device  # noqa: E402
from kappaflow.scan import scan_chunk  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
scan_chunk(
    snakemake.input.screening,  # noqa: F821
    chunk=int(snakemake.wildcards.chunk),  # noqa: F821
    chunk_size=snakemake.params.chunk_size,  # noqa: F821
    model_dirs=snakemake.params.model_dirs,  # noqa: F821
    predictions_out=snakemake.output.predictions,  # noqa: F821
    rejected_out=snakemake.output.rejected,  # noqa: F821
    source=snakemake.params.source,  # noqa: F821
    mirror_structures=snakemake.params.mirror_structures,  # noqa: F821
    online=snakemake.params.online,  # noqa: F821
    cutoff=snakemake.params.cutoff,  # noqa: F821
    min_distance=snakemake.params.min_distance,  # noqa: F821
    exclude_elements=snakemake.params.exclude_elements,  # noqa: F821
    batch_size=snakemake.resources.scan_batch_size,  # noqa: F821
    device=str(resolve_device("auto")),
)
