# Training: steps I, II, III of the ParAIsite protocol (kappaflow.training.runner).
#
# Outputs per run: results/models/step{step}/{train_on}/run{seed}/ (best.ckpt, metrics.csv, run.json,
# features.parquet: the learned representation of every material of the training set, for the domain)
# and, for step III, the stage-1 run of each seed: the step-II run on AFLOW of that seed (the same run) when
# training.stage1_epochs equals training.epochs, else its own run results/models/stage1/aflow/run{seed}/
# (rule train_stage1). Evaluating a run on the test sets is its own job (rule evaluate_run, evaluate.smk),
# so adding a test set never retrains.
#
# params hold exactly what a run's outputs depend on (its step, set, init, epochs and RUN_OPTIONS);
# the seed is a wildcard, and execution settings (GPUs, threads) are resources, so adding a seed or
# moving to a GPU reruns nothing that exists.
#
# Resume: a killed job keeps its state in the undeclared sibling folder `run{seed}.partial/`
# (last.ckpt, best-*.ckpt, spec.json), which Snakemake does not delete; rerunning the job resumes from
# last.ckpt and ends with the same best checkpoint as an uninterrupted run. A changed config (spec)
# starts over. The folder is removed when the run's outputs are written.
#
# Resources: every training rule declares `gpu=<training.gpus>` (default 0, so local runs never wait
# for a GPU). A cluster profile sets training.gpus: 1 (or `--set-resources train:gpu=1
# train_stage1:gpu=1`) and maps `gpu` to its executor's keys (snakemake-executor-plugin-slurm reads
# `gpu`/`gres` directly). Lightning picks the accelerator itself (accelerator="auto").
wildcard_constraints:
    step="|".join(protocol.STEPS),
    train_on="|".join(protocol.SET_SOURCES),
    seed=r"\d+",


rule train_stage1:
    input:
        **graph_inputs("AFLOW"),
        pretrained_json=f"{PRETRAINED}/model.json",
        pretrained_state=f"{PRETRAINED}/state.pt",
    output:
        ckpt=f"{protocol.stage1_dir('{seed}')}/best.ckpt",
        metrics=f"{protocol.stage1_dir('{seed}')}/metrics.csv",
        run_json=f"{protocol.stage1_dir('{seed}')}/run.json",
        features=f"{protocol.stage1_dir('{seed}')}/features.parquet",
    log:
        "logs/train_stage1/run{seed}.log",
    benchmark:
        "logs/benchmarks/train_stage1/run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    # One intra-op thread per run: MEGNet's small matrices gain little from more, and a busy
    # machine oversubscribed with OpenMP threads runs 10-30x slower; parallelism comes from
    # running several runs at once (--cores N). Profiles may raise it with set-threads.
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step="stage1",
        train_on="AFLOW",
        init=protocol.STEP_INIT["stage1"],
        epochs=TRAINING["stage1_epochs"],
        options=RUN_OPTIONS,
    script:
        "../scripts/train_run.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        ckpt=f"{protocol.run_dir('{step}', '{train_on}', '{seed}')}/best.ckpt",
        metrics=f"{protocol.run_dir('{step}', '{train_on}', '{seed}')}/metrics.csv",
        run_json=f"{protocol.run_dir('{step}', '{train_on}', '{seed}')}/run.json",
        features=f"{protocol.run_dir('{step}', '{train_on}', '{seed}')}/features.parquet",
    log:
        "logs/train/step{step}_{train_on}_run{seed}.log",
    benchmark:
        "logs/benchmarks/train/step{step}_{train_on}_run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    # One thread per run, as train_stage1.
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step=lambda wildcards: wildcards.step,
        train_on=lambda wildcards: wildcards.train_on,
        init=lambda wildcards: protocol.STEP_INIT[wildcards.step],
        epochs=TRAINING["epochs"],
        options=RUN_OPTIONS,
    script:
        "../scripts/train_run.py"
