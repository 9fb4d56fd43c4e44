# Materials Project low-κL scan: screening set (checkpoint) → chunks (one job each) → gather → figure.
checkpoint scan_screening_set:
    input:
        scan_screening_source,
    output:
        "results/scan/screening_set.csv",
    log:
        "logs/scan_screening_set/all.log",
    benchmark:
        "logs/benchmarks/scan_screening_set/all.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        source=config["source"],
        limit=SCAN["limit"],
        online=online_settings("mp_endpoint"),
        filters=(
            {**SCAN["online"], "exclude_elements": SCAN["exclude_elements"]}
            if config["source"] == "online"
            else None
        ),
    script:
        "../scripts/scan_screening_set.py"


rule scan_chunk:
    input:
        screening="results/scan/screening_set.csv",
        models=scan_model_checkpoints(),
        structures=scan_chunk_structures,
    output:
        predictions="results/scan/chunks/{chunk}.parquet",
        rejected="results/scan/chunks/{chunk}.rejected.csv",
    log:
        "logs/scan_chunk/{chunk}.log",
    benchmark:
        "logs/benchmarks/scan_chunk/{chunk}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        gpu=TRAINING["gpus"],
        # inference batch size: an execution setting, so a resource (changing it reruns nothing)
        scan_batch_size=SCAN["batch_size"],
    params:
        chunk_size=SCAN["chunk_size"],
        model_dirs=SCAN_MODELS,
        source=config["source"],
        mirror_structures=str(MIRROR_DIR / "mp" / "structures"),
        online=online_settings("mp_endpoint"),
        cutoff=protocol.FINE_TUNED_CUTOFF,
        min_distance=config["data"]["min_distance"],
        exclude_elements=SCAN["exclude_elements"],
    script:
        "../scripts/scan_chunk.py"


rule scan_gather:
    input:
        screening="results/scan/screening_set.csv",
        predictions=scan_chunk_files("predictions"),
        rejected=scan_chunk_files("rejected"),
    output:
        predictions="results/scan/screening_predictions.csv",
        rejected="results/scan/rejected.csv",
    log:
        "logs/scan_gather/all.log",
    benchmark:
        "logs/benchmarks/scan_gather/all.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    script:
        "../scripts/scan_gather.py"


rule scan_candidates:
    input:
        "results/scan/screening_predictions.csv",
    output:
        "results/scan/low_kappa_candidates.csv",
    log:
        "logs/scan_candidates/all.log",
    benchmark:
        "logs/benchmarks/scan_candidates/all.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        n_candidates=SCAN["n_candidates"],
        max_rel_std=SCAN["max_rel_std"],
    script:
        "../scripts/scan_candidates.py"


rule scan_figure:
    input:
        predictions="results/scan/screening_predictions.csv",
        candidates="results/scan/low_kappa_candidates.csv",
    output:
        png=report(
            "results/figures/scan_low_kappa.png",
            caption="../report/scan_low_kappa.rst",
            category="Screening",
        ),
        pdf="results/figures/scan_low_kappa.pdf",
    log:
        "logs/scan_figure/all.log",
    benchmark:
        "logs/benchmarks/scan_figure/all.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    params:
        max_rel_std=SCAN["max_rel_std"],
    script:
        "../scripts/scan_figure.py"
