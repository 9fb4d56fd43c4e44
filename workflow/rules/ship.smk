# The model shipped inside the package: the configured ensemble with its trust files, its card (training
# data, protocol, held-out error, commit, configuration) and the predictions it made of a few check
# structures. `cp -r results/shipped/model workflow/scripts/kappaflow/models/default` ships it.


rule ship_model:
    input:
        unpack(ship_inputs),
    output:
        directory(SHIPPED_MODEL),
    log:
        "logs/ship_model/model.log",
    benchmark:
        "logs/benchmarks/ship_model/model.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        step=SHIP["step"],
        train_on=SHIP["train_on"],
        members=SHIP["members"],
        half_precision=SHIP["half_precision"],
        check_structures=SHIP["check_structures"],
        heldout_note=uncalibrated_reason(SHIP["step"], SHIP["train_on"]),
        config=ship_config(),
    script:
        "../scripts/ship_model.py"
