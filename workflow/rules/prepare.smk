# Validation (with quarantine of bad rows), AFLOW↔HQ structure matching and graph featurization.


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
    wildcard_constraints:
        dataset="|".join(GRAPH_DATASETS),
    conda:
        "../../envs/data.yaml"
    threads: 8
    params:
        min_distance=config["data"]["min_distance"],
        cutoff=protocol.FINE_TUNED_CUTOFF,
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
    wildcard_constraints:
        dataset="|".join(GRAPH_DATASETS),
    conda:
        "../../envs/data.yaml"
    threads: 8
    params:
        cutoff=protocol.FINE_TUNED_CUTOFF,
    script:
        "../scripts/featurize.py"
