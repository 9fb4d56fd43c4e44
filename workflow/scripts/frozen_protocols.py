"""Snakemake adapter: gradient-boosted trees on one backbone's representations, paper and held-out protocols.

The trees use OpenMP: limited to the job's threads so that parallel jobs do not compete for cores.
"""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from threadpoolctl import threadpool_limits

from kappaflow.frozen import write_frozen_protocols
from kappaflow.protocol import DATASET_KEYS

smk = snakemake  # noqa: F821
keys = list(DATASET_KEYS)  # both inputs list one file per dataset key, in this order
with threadpool_limits(smk.threads):
    write_frozen_protocols(
        dict(zip(keys, smk.input.data, strict=True)),
        dict(zip(keys, smk.input.representations, strict=True)),
        smk.params.train_sets,
        smk.params.test_sets,
        smk.params.seeds,
        smk.params.val_fraction,
        smk.params.heldout_sets,
        smk.params.folds,
        smk.params.fold_seed,
        smk.params.regressor,
        smk.wildcards.backbone,
        smk.output.paper,
        smk.output.heldout,
    )
