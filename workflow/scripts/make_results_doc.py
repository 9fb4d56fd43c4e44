"""Snakemake adapter: results/docs/results.md from the tables, runs and benchmarks the workflow wrote."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.results_doc import write_results_doc  # noqa: E402

inputs = snakemake.input  # noqa: F821
heldout = ("heldout_table", "calibration") if inputs.heldout_per_run else ()
backbones = ("backbone_comparison",) if inputs.backbone_comparison else ()
write_results_doc(
    snakemake.params.config,  # noqa: F821
    {name: inputs[name] for name in ("mape_table", "vs_published")} | {name: inputs[name][0] for name in (*heldout, *backbones)},
    inputs.per_run,
    inputs.runs,
    inputs.run_jsons,
    inputs.benchmarks,
    snakemake.output[0],  # noqa: F821
    inputs.heldout_per_run[0] if inputs.heldout_per_run else None,
)
