# Data acquisition: AFLOW AGL labels + CIFs, Materials Project structures of the high-quality
# datasets, and the pretrained MEGNet; from the offline mirror (source: mirror) or online.
#
# The AFLOW CIFs (resources/aflow_agl/cif/<entry>.cif) are not a Snakemake output: the rule's
# outputs are labels.csv and a manifest (sha256 of each label row and CIF; the reason for an entry
# without CIF). A failed or interrupted download therefore keeps the CIFs it already has (Snakemake
# deletes only declared outputs), and the next run fetches only the missing ones. Consumers take the
# manifest (and labels.csv) as input. In mirror mode the mirror's labels.csv and CIFs (and structure
# JSONs) are inputs: a changed, added or deleted file reruns its rule.


rule aflow_agl:
    input:
        unpack(aflow_inputs),
    output:
        labels=AFLOW_LABELS,
        manifest=AFLOW_CIF_MANIFEST,
    log:
        "logs/aflow_agl/aflow.log",
    benchmark:
        "logs/benchmarks/aflow_agl/aflow.tsv"
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        source=config["source"],
        subset=config["data"]["aflow_subset"],
        online=online_settings("aflux_url", "aflow_page_size"),
    script:
        "../scripts/fetch_aflow_agl.py"


rule mp_structures:
    input:
        unpack(mp_inputs),
    output:
        table=MP_DATASET,
        manifest=MP_MANIFEST,
    log:
        "logs/mp_structures/{dataset}.log",
    benchmark:
        "logs/benchmarks/mp_structures/{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(HQ_DATASETS),
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        source=config["source"],
        labels_url=hq_labels_url,
        online=online_settings("mp_endpoint"),
    script:
        "../scripts/fetch_mp_structures.py"


rule pretrained_megnet:
    input:
        mirror_files=(
            [mirror_path("pretrained", Path(PRETRAINED).name, name) for name in ("model.json", "state.pt")]
            if config["source"] == "mirror"
            else []
        ),
    output:
        model_json=PRETRAINED_FILES[0],
        state=PRETRAINED_FILES[1],
    log:
        f"logs/pretrained_megnet/{Path(PRETRAINED).name}.log",
    benchmark:
        f"logs/benchmarks/pretrained_megnet/{Path(PRETRAINED).name}.tsv"
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        source=config["source"],
        mirror_dir=lambda wildcards, input: (
            str(Path(input.mirror_files[0]).parent) if input.mirror_files else None
        ),
        online=online_settings("pretrained_url"),
    script:
        "../scripts/fetch_pretrained.py"
