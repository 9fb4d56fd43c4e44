# Validation (with quarantine of bad rows), AFLOW↔HQ structure matching and graph featurization.


def validation_inputs(wildcards):
    """The acquired table of a dataset; for AFLOW also the CIF manifest (the CIFs sit in cif/)."""
    if wildcards.dataset == "aflow":
        return {"table": AFLOW_LABELS, "manifest": AFLOW_CIF_MANIFEST}
    return {"table": MP_DATASET.format(dataset=wildcards.dataset)}


rule validate:
    input:
        unpack(validation_inputs),
    output:
        structures="results/data/{dataset}.parquet",
        rejected="results/data/rejected/{dataset}.csv",
    log:
        "logs/validate/{dataset}.log",
    benchmark:
        "logs/benchmarks/validate/{dataset}.tsv"
    params:
        min_distance=config["data"]["min_distance"],
        cutoff=config["data"]["cutoff"],
    conda:
        "../../envs/data.yaml"
    wildcard_constraints:
        dataset="|".join(GRAPH_DATASETS),
    threads: 8
    script:
        "../scripts/validate_dataset.py"


rule gather_rejected:
    input:
        expand("results/data/rejected/{dataset}.csv", dataset=GRAPH_DATASETS),
    output:
        "results/data/rejected.csv",
    log:
        "logs/gather_rejected/all.log",
    benchmark:
        "logs/benchmarks/gather_rejected/all.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    script:
        "../scripts/validate_gather.py"


rule match_aflow_hq:
    input:
        aflow="results/data/aflow.parquet",
        hq=expand("results/data/{dataset}.parquet", dataset=HQ_DATASETS),
    output:
        "results/matching/aflow_hq_matches.csv",
    log:
        "logs/match_aflow_hq/all.log",
    benchmark:
        "logs/benchmarks/match_aflow_hq/all.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    script:
        "../scripts/match_aflow_hq.py"


rule featurize:
    input:
        "results/data/{dataset}.parquet",
    output:
        "results/graphs/{dataset}.parquet",
    log:
        "logs/featurize/{dataset}.log",
    benchmark:
        "logs/benchmarks/featurize/{dataset}.tsv"
    params:
        cutoff=config["data"]["cutoff"],
    conda:
        "../../envs/data.yaml"
    wildcard_constraints:
        dataset="|".join(GRAPH_DATASETS),
    threads: 8
    script:
        "../scripts/featurize.py"


def prepare_targets():
    """Final outputs of this module for rule all."""
    return [
        "results/data/rejected.csv",
        "results/matching/aflow_hq_matches.csv",
        *expand("results/graphs/{dataset}.parquet", dataset=GRAPH_DATASETS),
    ]
