"""Snakemake adapter: one trained run's predictions on every test set → kappaflow.training.evaluate.

The inference batch size is an execution setting, passed as a resource (not a param), so that changing
it reruns nothing.
"""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch
from kappaflow.predict import resolve_device
from kappaflow.protocol import graph_paths
from kappaflow.training.evaluate import evaluate_run

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
evaluate_run(
    smk.input.run_json,
    smk.input.ckpt,
    smk.input.features,
    graph_paths(smk.input),
    list(smk.params.test_sets),
    smk.output[0],
    batch_size=int(smk.resources.eval_batch_size),
    device=str(resolve_device("auto")),
)
