# Evaluation: the paper's MAPE table and its comparison with the published values, the figures,
# the composition-only baseline (row "RF") and the held-out protocol (beyond the paper).
# Held-out training jobs declare gpu=<training.gpus> like the training rules (see train.smk).
wildcard_constraints:
    figure="|".join(FIGURES),
    fold=r"\d+",


# One job per trained run: its predictions on the validation split of every test set. Separate from
# training, so adding a test set or changing a test set's data re-evaluates and never retrains. A
# cluster profile bundles these small jobs (profiles/slurm: groups + group-components).
rule evaluate_run:
    input:
        unpack(evaluation_inputs),
    output:
        f"{protocol.run_dir('{step}', '{train_on}', '{seed}')}/predictions.parquet",
    log:
        "logs/evaluate_run/step{step}_{train_on}_run{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate_run/step{step}_{train_on}_run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        eval_batch_size=TRAINING["eval_batch_size"],
    params:
        test_sets=TRAINING["test_sets"],
    script:
        "../scripts/evaluate_run.py"


rule baseline_paper_protocol:
    input:
        unpack(lambda wildcards: graph_inputs(*TRAINING["train_sets"], *TRAINING["test_sets"])),
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
        train_sets=TRAINING["train_sets"],
        test_sets=TRAINING["test_sets"],
        seeds=TRAINING["seeds"],
        val_fraction=TRAINING["val_fraction"],
        n_estimators=BASELINE["n_estimators"],
        min_samples_leaf=BASELINE["min_samples_leaf"],
    script:
        "../scripts/evaluate_baseline.py"


rule collect_runs:
    input:
        runs=configured_runs("run.json"),
        predictions=configured_runs("predictions.parquet"),
        metrics=configured_runs("metrics.csv"),
        baseline=["results/baseline/predictions.parquet"] if BASELINE["enabled"] else [],
        trust=[file for file in ensemble_targets() if file.endswith("trust.json")],
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


# One member (seed) of the ensemble of one held-out fold.
rule heldout_run:
    input:
        unpack(heldout_run_inputs),
    output:
        predictions="results/heldout/step{step}/{train_on}/fold{fold}/run{seed}/predictions.parquet",
        features="results/heldout/step{step}/{train_on}/fold{fold}/run{seed}/features.parquet",
    log:
        "logs/heldout_run/step{step}/{train_on}/fold{fold}/run{seed}.log",
    benchmark:
        "logs/benchmarks/heldout_run/step{step}/{train_on}/fold{fold}/run{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=TRAINING["gpus"],
    params:
        folds=HELDOUT["folds"],
        fold_seed=HELDOUT["seed"],
        pretrained_dir=lambda wildcards, input: str(Path(input.pretrained_json).parent),
        work_dir=lambda wildcards, output: str(Path(output.predictions).parent),
        run_options={**RUN_OPTIONS, "epochs": HELDOUT["epochs"]},
    script:
        "../scripts/evaluate_heldout_run.py"


# The fold's ensemble: mean κ, spread of log10 κ and distance to the fold's training materials.
rule heldout_fold_ensemble:
    input:
        predictions=heldout_members("predictions.parquet"),
        features=heldout_members("features.parquet"),
    output:
        "results/heldout/step{step}/{train_on}/fold{fold}/ensemble.parquet",
    log:
        "logs/heldout_fold_ensemble/step{step}/{train_on}/fold{fold}.log",
    benchmark:
        "logs/benchmarks/heldout_fold_ensemble/step{step}/{train_on}/fold{fold}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    script:
        "../scripts/heldout_fold_ensemble.py"


# Cross-fitted calibration of the ensemble spread and the applicability domain's distance threshold.
rule heldout_calibration:
    input:
        heldout_ensembles(),
    output:
        trust="results/heldout/trust.json",
        table_csv="results/tables/calibration.csv",
        table_md=report(
            "results/tables/calibration.md",
            caption="../report/calibration.rst",
            category="Tables",
        ),
        png=report(
            "results/figures/calibration.png",
            caption="../report/calibration_figure.rst",
            category="Figures",
        ),
        pdf="results/figures/calibration.pdf",
    log:
        "logs/heldout_calibration/all.log",
    benchmark:
        "logs/benchmarks/heldout_calibration/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    params:
        error_factor=HELDOUT["domain_error_factor"],
    script:
        "../scripts/heldout_calibration.py"


# What `kappaflow predict` reads beside an ensemble's checkpoints: its training materials in its own
# representation (domain.parquet) and its calibration and domain threshold from held-out folds (trust.json).
rule ensemble_trust:
    input:
        unpack(ensemble_trust_inputs),
    output:
        domain=f"{protocol.ensemble_dir('{step}', '{train_on}')}/domain.parquet",
        trust=f"{protocol.ensemble_dir('{step}', '{train_on}')}/trust.json",
    log:
        "logs/ensemble_trust/step{step}_{train_on}.log",
    benchmark:
        "logs/benchmarks/ensemble_trust/step{step}_{train_on}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        uncalibrated=ensemble_uncalibrated_reason,
    script:
        "../scripts/ensemble_trust.py"


rule heldout_baseline:
    input:
        unpack(lambda wildcards: graph_inputs(*HELDOUT["train_sets"])),
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
        val_fraction=TRAINING["val_fraction"],
        n_estimators=BASELINE["n_estimators"],
        min_samples_leaf=BASELINE["min_samples_leaf"],
    script:
        "../scripts/evaluate_heldout_baseline.py"


rule results_doc:
    input:
        mape_table="results/tables/mape_table.md",
        vs_published="results/tables/vs_published.md",
        heldout_table=["results/tables/heldout_table.md"] if HELDOUT["enabled"] else [],
        heldout_per_run=["results/tables/heldout_per_run.csv"] if HELDOUT["enabled"] else [],
        calibration=["results/tables/calibration.md"] if HELDOUT["enabled"] else [],
        backbone_comparison=(["results/tables/backbone_comparison.md"] if COMPARES_BACKBONES else []),
        per_run="results/tables/per_run_metrics.csv",
        runs="results/tables/runs.csv",
        run_jsons=configured_runs("run.json"),
        benchmarks=results_benchmarks(),
    output:
        report(
            "results/docs/results.md",
            caption="../report/results_doc.rst",
            category="Results",
        ),
    log:
        "logs/results_doc/all.log",
    benchmark:
        "logs/benchmarks/results_doc/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    params:
        config=results_config(),
    script:
        "../scripts/make_results_doc.py"


rule heldout_tables:
    input:
        ensembles=heldout_ensembles(),
        runs=heldout_members_all("predictions.parquet"),
        baseline=["results/heldout/RF/predictions.parquet"] if BASELINE["enabled"] else [],
        matches="results/matching/aflow_hq_matches.csv",
    output:
        predictions="results/tables/heldout_predictions.parquet",
        per_run="results/tables/heldout_per_run.csv",
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
