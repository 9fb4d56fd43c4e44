# Evaluation: the paper's MAPE table and its comparison with the published values, the figures,
# the composition-only baseline (row "RF") and the held-out protocol (beyond the paper).
# Held-out training jobs declare gpu=<training.gpus> like the training rules (see train.smk).
wildcard_constraints:
    figure="|".join(FIGURES),
    fold=r"\d+",


rule baseline_paper_protocol:
    input:
        unpack(lambda wildcards: graph_files(EVAL_TRAIN_SETS + EVAL_TEST_SETS)),
    output:
        "results/baseline/predictions.parquet",
    log:
        "logs/baseline_paper_protocol/all.log",
    benchmark:
        "logs/benchmarks/baseline_paper_protocol/all.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        train_sets=EVAL_TRAIN_SETS,
        test_sets=EVAL_TEST_SETS,
        seeds=EVAL_SEEDS,
        val_fraction=config["training"]["val_fraction"],
        n_estimators=BASELINE["n_estimators"],
        min_samples_leaf=BASELINE["min_samples_leaf"],
    script:
        "../scripts/evaluate_baseline.py"


rule collect_runs:
    input:
        runs=trained_runs("run.json"),
        predictions=trained_runs("predictions.parquet"),
        metrics=trained_runs("metrics.csv"),
        baseline=["results/baseline/predictions.parquet"] if BASELINE["enabled"] else [],
    output:
        predictions="results/tables/predictions.parquet",
        runs="results/tables/runs.csv",
        history="results/tables/history.csv",
    log:
        "logs/collect_runs/all.log",
    benchmark:
        "logs/benchmarks/collect_runs/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    script:
        "../scripts/evaluate_collect.py"


rule mape_tables:
    input:
        predictions="results/tables/predictions.parquet",
        published=PUBLISHED_TABLE,
    output:
        per_run="results/tables/per_run_metrics.csv",
        table_csv="results/tables/mape_table.csv",
        table_md=report(
            "results/tables/mape_table.md",
            caption="../report/mape_table.rst",
            category="Tables",
        ),
        comparison_csv="results/tables/vs_published.csv",
        comparison_md=report(
            "results/tables/vs_published.md",
            caption="../report/vs_published.rst",
            category="Tables",
        ),
    log:
        "logs/mape_tables/all.log",
    benchmark:
        "logs/benchmarks/mape_tables/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    script:
        "../scripts/make_tables.py"


rule figure:
    input:
        lambda wildcards: FIGURE_SOURCES[wildcards.figure],
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "logs/figure/{figure}.log",
    benchmark:
        "logs/benchmarks/figure/{figure}.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    script:
        "../scripts/make_figure.py"


rule heldout_fold:
    input:
        unpack(lambda wildcards: graph_files([wildcards.train_on])),
        model_json=f"{PRETRAINED}/model.json",
        state=f"{PRETRAINED}/state.pt",
        stage1=lambda wildcards: (
            [f"results/models/stage1/aflow/run{HELDOUT['seed']}/best.ckpt"]
            if wildcards.step == "III"
            else []
        ),
    output:
        "results/heldout/step{step}/{train_on}/fold{fold}/predictions.parquet",
    log:
        "logs/heldout_fold/step{step}/{train_on}/fold{fold}.log",
    benchmark:
        "logs/benchmarks/heldout_fold/step{step}/{train_on}/fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=config["training"]["gpus"],
    params:
        folds=HELDOUT["folds"],
        seed=HELDOUT["seed"],
        pretrained_dir=lambda wildcards, input: str(Path(input.model_json).parent),
        work_dir=lambda wildcards, output: str(Path(output[0]).parent),
        run_options={**spec_options(config["training"]), "epochs": HELDOUT["epochs"]},
    script:
        "../scripts/evaluate_heldout_fold.py"


rule heldout_baseline:
    input:
        unpack(lambda wildcards: graph_files(HELDOUT["train_sets"])),
    output:
        "results/heldout/RF/predictions.parquet",
    log:
        "logs/heldout_baseline/all.log",
    benchmark:
        "logs/benchmarks/heldout_baseline/all.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        train_sets=HELDOUT["train_sets"],
        folds=HELDOUT["folds"],
        seed=HELDOUT["seed"],
        val_fraction=config["training"]["val_fraction"],
        n_estimators=BASELINE["n_estimators"],
        min_samples_leaf=BASELINE["min_samples_leaf"],
    script:
        "../scripts/evaluate_heldout_baseline.py"


rule heldout_tables:
    input:
        folds=heldout_folds(),
        matches="results/matching/aflow_hq_matches.csv",
    output:
        predictions="results/tables/heldout_predictions.parquet",
        table_csv="results/tables/heldout_table.csv",
        table_md=report(
            "results/tables/heldout_table.md",
            caption="../report/heldout_table.rst",
            category="Tables",
        ),
    log:
        "logs/heldout_tables/all.log",
    benchmark:
        "logs/benchmarks/heldout_tables/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    script:
        "../scripts/make_heldout_tables.py"
