# Materials Project low-κL scan: screening set (checkpoint) → chunks (one job each) → gather → figure.
checkpoint scan_screening_set:
    input:
        scan_screening_source,
    output:
        "results/scan/screening_set.csv",
    log:
        "logs/scan_screening_set/all.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        source=config["source"],
        limit=SCAN["limit"],
        online=config["online"],
        filters=SCAN["online"],
    script:
        "../scripts/scan_screening_set.py"


rule scan_chunk:
    input:
        screening="results/scan/screening_set.csv",
        models=scan_model_checkpoints(),
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
        gpu=config["training"]["gpus"],
    params:
        chunk_size=SCAN["chunk_size"],
        model_dirs=SCAN_MODELS,
        source=config["source"],
        mirror_structures=str(MIRROR_DIR / "mp" / "structures"),
        online=config["online"],
        cutoff=config["data"]["cutoff"],
        min_distance=config["data"]["min_distance"],
        batch_size=SCAN["batch_size"],
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
        candidates="results/scan/low_kappa_candidates.csv",
    log:
        "logs/scan_gather/all.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        n_candidates=SCAN["n_candidates"],
        max_rel_std=SCAN["max_rel_std"],
    script:
        "../scripts/scan_gather.py"


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
    conda:
        "../../envs/plot.yaml"
    threads: 1
    params:
        max_rel_std=SCAN["max_rel_std"],
    script:
        "../scripts/scan_figure.py"
