"""Snakemake adapter: results/tables/backbone_comparison.{csv,md} (kappaflow.evaluation.backbones)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.backbones import read_throughput, write_comparison

smk = snakemake  # noqa: F821
write_comparison(
    smk.input.per_run,
    smk.input.heldout[0] if smk.input.heldout else None,
    smk.input.paper,
    smk.input.frozen_heldout,
    read_throughput(smk.params.backbones, smk.input.representations, smk.input.benchmarks),
    smk.output.table_csv,
    smk.output.table_md,
    smk.input.finetuned,
    smk.input.finetuned_heldout,
)
