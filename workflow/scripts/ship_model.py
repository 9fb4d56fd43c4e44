"""Snakemake adapter: export the configured ensemble as the shippable model (kappaflow.shipped)."""

from kappaflow.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821

from kappaflow.shipped import check_structures, export_model, model_card

inputs, params = snakemake.input, snakemake.params  # noqa: F821
optional = {name: inputs[name] if name in inputs.keys() else None for name in ("heldout_table", "calibration")}
card = model_card(
    f"step{params.step}-{params.train_on}",
    params.step,
    params.train_on,
    params.config,
    inputs.run_jsons,
    inputs.trust,
    optional["heldout_table"],
    optional["calibration"],
    params.heldout_note,
)
export_model(
    inputs.checkpoints,
    [inputs.domain, inputs.trust],
    snakemake.output[0],  # noqa: F821
    check_structures(inputs.data, params.check_structures),
    card,
    members=min(params.members, len(inputs.checkpoints)),
    half_precision=params.half_precision,
    precision_structures=check_structures(inputs.data),
)
