"""Snakemake adapter: one fine-tuning of a backbone other than MEGNet (rules finetune_stage1, finetune_backbone
and finetune_heldout_run) → kappaflow.training.finetune."""

from pathlib import Path

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

import torch
from kappaflow.training.finetune import FinetuneSpec, Fold, finetune_run

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
held_out = "fold" in smk.wildcards.keys()
finetune_run(
    FinetuneSpec(
        backbone=smk.wildcards.backbone,
        train_on=smk.params.train_on,
        seed=int(smk.wildcards.seed),
        out_dir=str(Path(smk.output.run_json).parent),
        data_paths={Path(path).stem: str(path) for path in smk.input.data},
        pretrained_root=smk.params.pretrained_root,
        epochs=int(smk.params.epochs),
        fold=Fold(int(smk.wildcards.fold), smk.params.folds, smk.params.fold_seed) if held_out else None,
        step=smk.params.step,
        init_checkpoint=smk.input.get("stage1"),
        **smk.params.options,
    )
)
