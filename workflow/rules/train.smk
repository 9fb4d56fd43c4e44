# Training: steps I, II, III of the ParAIsite protocol (kappaflow.training.runner).
#
# Outputs per run: results/models/step{step}/{train_on}/run{seed}/ (best.ckpt, metrics.csv, run.json,
# predictions.parquet) and, for step III, the shared stage-1 runs results/models/stage1/aflow/run{seed}/.
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
    step="I|II|III",
    train_on="|".join(SET_SOURCES),
    seed=r"\d+",


rule train_stage1:
    input:
        **graph_inputs("AFLOW"),
        pretrained_json=f"{PRETRAINED}/model.json",
        pretrained_state=f"{PRETRAINED}/state.pt",
    output:
        ckpt="results/models/stage1/aflow/run{seed}/best.ckpt",
        metrics="results/models/stage1/aflow/run{seed}/metrics.csv",
        run_json="results/models/stage1/aflow/run{seed}/run.json",
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
        init="pretrained",
        epochs=TRAINING["stage1_epochs"],
        test_sets=[],
        training=TRAINING,
    script:
        "../scripts/train_run.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        ckpt="results/models/step{step}/{train_on}/run{seed}/best.ckpt",
        metrics="results/models/step{step}/{train_on}/run{seed}/metrics.csv",
        run_json="results/models/step{step}/{train_on}/run{seed}/run.json",
        predictions="results/models/step{step}/{train_on}/run{seed}/predictions.parquet",
    log:
        "logs/train/step{step}_{train_on}_run{seed}.log",
    benchmark:
        "logs/benchmarks/train/step{step}_{train_on}_run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    # One intra-op thread per run: MEGNet's small matrices gain little from more, and a busy
    # machine oversubscribed with OpenMP threads runs 10-30x slower; parallelism comes from
    # running several runs at once (--cores N). Profiles may raise it with set-threads.
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        step=lambda wildcards: wildcards.step,
        train_on=lambda wildcards: wildcards.train_on,
        init=lambda wildcards: {"I": "random", "II": "pretrained", "III": "checkpoint"}[wildcards.step],
        epochs=TRAINING["epochs"],
        test_sets=TRAINING["test_sets"],
        training=TRAINING,
    script:
        "../scripts/train_run.py"
