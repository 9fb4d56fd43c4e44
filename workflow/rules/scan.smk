# Materials Project low-κL scan: screening set (checkpoint) → chunks (one job each) → gather → figure.
import math

SCAN = config["scan"]
SCAN_MODELS = {f"step{SCAN['step']}/{name}": f"results/models/step{SCAN['step']}/{name}" for name in SCAN["train_sets"]}


def scan_screening_source(wildcards):
    """The screening CSV of a mirror run (the configured one, else the mirror's); nothing online."""
    if config["source"] == "online":
        return []
    return str(repo_path(SCAN["screening_set"]) if SCAN["screening_set"] else MIRROR_DIR / "mp" / "screening_set.csv")


def scan_model_checkpoints():
    """best.ckpt of every run of every scanned ensemble."""
    return [f"{folder}/run{seed}/best.ckpt" for folder in SCAN_MODELS.values() for seed in config["training"]["seeds"]]


def scan_chunk_files(kind):
    """All chunk outputs of one kind (predictions or rejected), once the screening set is known."""

    def files(wildcards):
        screening = checkpoints.scan_screening_set.get().output[0]
        with open(screening) as handle:
            n_rows = sum(1 for _ in handle) - 1
        n = max(1, math.ceil(n_rows / SCAN["chunk_size"]))
        suffix = "parquet" if kind == "predictions" else "rejected.csv"
        return [f"results/scan/chunks/{chunk}.{suffix}" for chunk in range(n)]

    return files


checkpoint scan_screening_set:
    input:
        scan_screening_source,
    output:
        "results/scan/screening_set.csv",
    log:
        "logs/scan_screening_set/all.log",
    params:
        source=config["source"],
        limit=SCAN["limit"],
        online=config["online"],
        filters=SCAN["online"],
    conda:
        "../../envs/data.yaml"
    threads: 1
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
    params:
        chunk_size=SCAN["chunk_size"],
        model_dirs=SCAN_MODELS,
        source=config["source"],
        mirror_structures=str(MIRROR_DIR / "mp" / "structures"),
        online=config["online"],
        cutoff=config["data"]["cutoff"],
        min_distance=config["data"]["min_distance"],
        batch_size=SCAN["batch_size"],
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        gpu=1,
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
    params:
        n_candidates=SCAN["n_candidates"],
        max_rel_std=SCAN["max_rel_std"],
    conda:
        "../../envs/data.yaml"
    threads: 1
    script:
        "../scripts/scan_gather.py"


rule scan_figure:
    input:
        predictions="results/scan/screening_predictions.csv",
        candidates="results/scan/low_kappa_candidates.csv",
    output:
        png="results/figures/scan_low_kappa.png",
        pdf="results/figures/scan_low_kappa.pdf",
    log:
        "logs/scan_figure/all.log",
    params:
        max_rel_std=SCAN["max_rel_std"],
    conda:
        "../../envs/plot.yaml"
    threads: 1
    script:
        "../scripts/scan_figure.py"


def scan_targets():
    """Final outputs of this module for rule all."""
    return [
        "results/scan/screening_predictions.csv",
        "results/scan/low_kappa_candidates.csv",
        "results/scan/rejected.csv",
        "results/figures/scan_low_kappa.png",
        "results/figures/scan_low_kappa.pdf",
    ]
