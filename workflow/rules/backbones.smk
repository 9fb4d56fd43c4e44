# Pretrained backbones other than MEGNet (kappaflow.backbones), two ways: frozen-representation regression
# (kappaflow.frozen: each backbone's representation of every validated structure, one job per backbone, then
# gradient-boosted trees on it under the paper's and the held-out protocols, one job per backbone) and
# fine-tuning like steps II and III (kappaflow.training.finetune: one job per run, stage-1 runs on AFLOW for
# step III); then their comparison with the fine-tuned MEGNet. Paths name the backbone, so adding one
# computes only what is new.
wildcard_constraints:
    backbone="|".join(map(re.escape, protocol.BACKBONE_FOLDERS)),
    folder="|".join(map(re.escape, BACKBONE_MODEL_FOLDERS)),


# The matgl backbones other than MEGNet: their model folder, copied from the mirror or downloaded.
rule pretrained_backbone:
    input:
        mirror_files=lambda wildcards: (
            [mirror_path("pretrained", wildcards.folder, name) for name in BACKBONE_FILES]
            if config["source"] == "mirror"
            else []
        ),
    output:
        [f"resources/pretrained/{{folder}}/{name}" for name in BACKBONE_FILES],
    log:
        "logs/pretrained_backbone/{folder}.log",
    benchmark:
        "logs/benchmarks/pretrained_backbone/{folder}.tsv"
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        source=config["source"],
        mirror_dir=lambda wildcards, input: (
            str(Path(input.mirror_files[0]).parent) if input.mirror_files else None
        ),
        online=online_settings("pretrained_models_url"),
    script:
        "../scripts/fetch_backbone.py"


rule represent:
    input:
        data=expand("results/data/{key}.parquet", key=GRAPH_DATASETS),
        model=lambda wildcards: backbone_model_files(wildcards.backbone),
    output:
        representations=representation_files("{backbone}"),
        rejected=representation_files("{backbone}", "rejected.csv"),
    log:
        "logs/represent/{backbone}.log",
    benchmark:
        "logs/benchmarks/represent/{backbone}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
        # an execution setting, so a resource (changing it reruns nothing)
        represent_batch_size=MODEL["batch_size"],
    params:
        pretrained_root="resources/pretrained",
    script:
        "../scripts/represent.py"


rule frozen_protocols:
    input:
        data=expand("results/data/{key}.parquet", key=GRAPH_DATASETS),
        representations=representation_files("{backbone}"),
    output:
        paper="results/frozen/{backbone}/paper_predictions.parquet",
        heldout="results/frozen/{backbone}/heldout_predictions.parquet",
    log:
        "logs/frozen_protocols/{backbone}.log",
    benchmark:
        "logs/benchmarks/frozen_protocols/{backbone}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        train_sets=TRAINING["train_sets"],
        test_sets=TRAINING["test_sets"],
        seeds=TRAINING["seeds"],
        val_fraction=TRAINING["val_fraction"],
        heldout_sets=HELDOUT["train_sets"] if HELDOUT["enabled"] else [],
        folds=HELDOUT["folds"],
        fold_seed=HELDOUT["seed"],
        regressor={key: FROZEN[key] for key in ("max_iter", "learning_rate", "min_samples_leaf")},
    script:
        "../scripts/frozen_protocols.py"


# A backbone other than MEGNet fine-tuned like step II on AFLOW: the stage 1 of its step-III runs with this seed.
rule finetune_stage1:
    input:
        unpack(lambda wildcards: finetune_inputs(wildcards.backbone, "stage1", "AFLOW", wildcards.seed)),
    output:
        **finetune_outputs(protocol.finetuned_stage1_dir("{backbone}", "{seed}")),
    log:
        "logs/finetune_stage1/{backbone}_run{seed}.log",
    benchmark:
        "logs/benchmarks/finetune_stage1/{backbone}_run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    # One thread per run, as rule train.
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step="stage1",
        train_on="AFLOW",
        epochs=FINETUNE["stage1_epochs"],
        options=RUN_OPTIONS,
        pretrained_root="resources/pretrained",
    script:
        "../scripts/finetune_backbone.py"


# A backbone other than MEGNet fine-tuned like step II or III on one training set with one seed
# (kappaflow.training.finetune); step III starts from its stage-1 run with the same seed.
rule finetune_backbone:
    input:
        unpack(
            lambda wildcards: finetune_inputs(
                wildcards.backbone, wildcards.step, wildcards.train_on, wildcards.seed
            )
        ),
    output:
        **finetune_outputs(f"{protocol.finetuned_dir('{backbone}', '{step}', '{train_on}')}/run{{seed}}"),
    log:
        "logs/finetune_backbone/{backbone}_step{step}_{train_on}_run{seed}.log",
    benchmark:
        "logs/benchmarks/finetune_backbone/{backbone}_step{step}_{train_on}_run{seed}.tsv"
    wildcard_constraints:
        step="|".join(protocol.FINETUNE_STEPS),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step=lambda wildcards: wildcards.step,
        train_on=lambda wildcards: wildcards.train_on,
        epochs=FINETUNE["epochs"],
        options=RUN_OPTIONS,
        pretrained_root="resources/pretrained",
    script:
        "../scripts/finetune_backbone.py"


# The same under the held-out protocol: one member (seed) of the fold's ensemble, predicting the outer test
# fold (step III: from the stage-1 run of the member's seed).
rule finetune_heldout_run:
    input:
        unpack(
            lambda wildcards: finetune_inputs(
                wildcards.backbone, wildcards.step, wildcards.train_on, wildcards.seed
            )
        ),
    output:
        **finetune_outputs(
            f"{protocol.finetuned_dir('{backbone}', '{step}', '{train_on}')}/fold{{fold}}/run{{seed}}"
        ),
    log:
        "logs/finetune_heldout_run/{backbone}_step{step}_{train_on}_fold{fold}_run{seed}.log",
    benchmark:
        "logs/benchmarks/finetune_heldout_run/{backbone}_step{step}_{train_on}_fold{fold}_run{seed}.tsv"
    wildcard_constraints:
        step="|".join(protocol.FINETUNE_STEPS),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step=lambda wildcards: wildcards.step,
        train_on=lambda wildcards: wildcards.train_on,
        epochs=FINETUNE["epochs"],
        options=RUN_OPTIONS,
        pretrained_root="resources/pretrained",
        folds=HELDOUT["folds"],
        fold_seed=HELDOUT["seed"],
    script:
        "../scripts/finetune_backbone.py"


# The fold ensembles of a fine-tuned backbone: mean κ, spread of log10 κ and distance to the fold's training
# materials, per outer-test material.
rule finetune_heldout_ensemble:
    input:
        predictions=finetuned_fold_members("predictions.parquet"),
        features=finetuned_fold_members("features.parquet"),
    output:
        f"{protocol.finetuned_dir('{backbone}', '{step}', '{train_on}')}/heldout_predictions.parquet",
    log:
        "logs/finetune_heldout_ensemble/{backbone}_step{step}_{train_on}.log",
    benchmark:
        "logs/benchmarks/finetune_heldout_ensemble/{backbone}_step{step}_{train_on}.tsv"
    wildcard_constraints:
        step="|".join(protocol.FINETUNE_STEPS),
    conda:
        "../../envs/train.yaml"
    threads: 1
    script:
        "../scripts/finetune_heldout_ensemble.py"


# What `kappaflow predict` reads beside a fine-tuned backbone's ensemble (as rule ensemble_trust for MEGNet's):
# its training materials in its own representation, and calibration and domain threshold from its held-out folds.
rule finetune_trust:
    input:
        unpack(finetune_trust_inputs),
    output:
        domain=f"{protocol.finetuned_dir('{backbone}', '{step}', '{train_on}')}/domain.parquet",
        trust=f"{protocol.finetuned_dir('{backbone}', '{step}', '{train_on}')}/trust.json",
    log:
        "logs/finetune_trust/{backbone}_step{step}_{train_on}.log",
    benchmark:
        "logs/benchmarks/finetune_trust/{backbone}_step{step}_{train_on}.tsv"
    wildcard_constraints:
        step="|".join(protocol.FINETUNE_STEPS),
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        calibration=finetune_trust_params,
    script:
        "../scripts/finetune_trust.py"


rule backbone_comparison:
    input:
        per_run="results/tables/per_run_metrics.csv",
        heldout=["results/tables/heldout_predictions.parquet"] if HELDOUT["enabled"] else [],
        paper=expand("results/frozen/{backbone}/paper_predictions.parquet", backbone=FROZEN_BACKBONES),
        frozen_heldout=expand(
            "results/frozen/{backbone}/heldout_predictions.parquet", backbone=FROZEN_BACKBONES
        ),
        representations=[file for name in FROZEN_BACKBONES for file in representation_files(name)],
        benchmarks=expand("logs/benchmarks/represent/{backbone}.tsv", backbone=FROZEN_BACKBONES),
        finetuned=finetuned_files("predictions.parquet"),
        finetuned_heldout=finetuned_heldout_files(),
    output:
        table_csv="results/tables/backbone_comparison.csv",
        table_md=report(
            "results/tables/backbone_comparison.md",
            caption="../report/backbone_comparison.rst",
            category="Tables",
        ),
    log:
        "logs/backbone_comparison/all.log",
    benchmark:
        "logs/benchmarks/backbone_comparison/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    params:
        backbones=FROZEN_BACKBONES,
    script:
        "../scripts/backbone_comparison.py"
