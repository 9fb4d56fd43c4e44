"""Snakemake adapter: one backbone's representation of every validated structure → kappaflow.frozen."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch
from kappaflow.backbones import load_backbone
from kappaflow.frozen import represent_file
from kappaflow.predict import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
backbone = load_backbone(smk.wildcards.backbone, Path(smk.params.pretrained_root), str(resolve_device("auto")))
for data, output, rejected in zip(smk.input.data, smk.output.representations, smk.output.rejected, strict=True):
    represent_file(data, backbone, output, rejected, int(smk.resources.represent_batch_size))
