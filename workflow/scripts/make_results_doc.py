"""Snakemake adapter: results/docs/results.md from the tables, runs and benchmarks the workflow wrote."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.evaluation.results_doc import write_results_doc  # noqa: E402

inputs = snakemake.input  # noqa: F821
write_results_doc(
    snakemake.params.config,  # noqa: F821
    {name: inputs[name] for name in ("mape_table", "vs_published")}
    | ({"heldout_table": inputs.heldout_table[0]} if inputs.heldout_table else {}),
    inputs.per_run,
    inputs.runs,
    inputs.run_jsons,
    inputs.benchmarks,
    snakemake.output[0],  # noqa: F821
)
