# Data acquisition: AFLOW AGL labels + CIFs, Materials Project structures of the high-quality
# datasets, and the pretrained MEGNet; from the offline mirror (source: mirror) or online.
#
# The AFLOW CIFs (resources/aflow_agl/cif/<entry>.cif) are not a Snakemake output: the rule's
# outputs are labels.csv and a manifest of the CIFs (entry, cif, sha256). A failed or interrupted
# download therefore keeps the CIFs it already has (Snakemake deletes only declared outputs), and
# the next run fetches only the missing ones. Consumers take the manifest (and labels.csv) as input.

AFLOW_LABELS = "resources/aflow_agl/labels.csv"
AFLOW_CIF_MANIFEST = "resources/aflow_agl/cif_manifest.csv"
MP_DATASET = "resources/mp/{dataset}.parquet"
PRETRAINED_FILES = [f"{PRETRAINED}/model.json", f"{PRETRAINED}/state.pt"]


def data_targets():
    """Final outputs of this module for rule all."""
    return [
        AFLOW_LABELS,
        AFLOW_CIF_MANIFEST,
        *expand(MP_DATASET, dataset=HQ_DATASETS),
        *PRETRAINED_FILES,
    ]


def mirror_path(*parts):
    """A path inside the mirror as a string in mirror mode; None online."""
    return str(MIRROR_DIR.joinpath(*parts)) if config["source"] == "mirror" else None


def online_settings(*keys):
    """The online settings a rule needs, plus timeout and retries; None in mirror mode.

    Only these keys become params, so that editing an unrelated URL does not rerun the rule.
    """
    if config["source"] != "online":
        return None
    return {
        key: config["online"][key]
        for key in (*keys, "timeout_s", "retries", "backoff_s")
    }


def hq_labels_location(wildcards):
    """The label CSV of a dataset: the mirror's, or the configured URL or local path."""
    if config["source"] == "mirror":
        return mirror_path("hq", f"{wildcards.dataset}.csv")
    location = config["online"]["hq_labels"][wildcards.dataset]
    if location.startswith(("http://", "https://")):
        return location
    return str(repo_path(location))


def hq_labels_input(wildcards):
    """The label CSV as an input when it is a local file (so that edits rerun the rule)."""
    location = hq_labels_location(wildcards)
    return [] if location.startswith(("http://", "https://")) else [location]


rule aflow_agl:
    input:
        mirror_labels=(
            [mirror_path("aflow_agl", "labels.csv")] if config["source"] == "mirror" else []
        ),
    output:
        labels=AFLOW_LABELS,
        manifest=AFLOW_CIF_MANIFEST,
    log:
        "logs/aflow_agl/aflow.log",
    benchmark:
        "logs/benchmarks/aflow_agl/aflow.tsv"
    params:
        source=config["source"],
        subset=config["data"]["aflow_subset"],
        mirror_dir=lambda wildcards, input: (
            str(Path(input.mirror_labels[0]).parent) if input.mirror_labels else None
        ),
        online=online_settings("aflux_url", "aflow_page_size"),
    conda:
        "../../envs/data.yaml"
    localrule: True
    script:
        "../scripts/fetch_aflow_agl.py"


rule mp_structures:
    input:
        hq_labels_input,
    output:
        MP_DATASET,
    log:
        "logs/mp_structures/{dataset}.log",
    benchmark:
        "logs/benchmarks/mp_structures/{dataset}.tsv"
    params:
        source=config["source"],
        labels=hq_labels_location,
        mirror_dir=mirror_path("mp"),
        online=online_settings("mp_endpoint"),
    conda:
        "../../envs/data.yaml"
    wildcard_constraints:
        dataset="|".join(HQ_DATASETS),
    localrule: True
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
    params:
        source=config["source"],
        mirror_dir=lambda wildcards, input: (
            str(Path(input.mirror_files[0]).parent) if input.mirror_files else None
        ),
        online=online_settings("pretrained_url"),
    conda:
        "../../envs/data.yaml"
    localrule: True
    script:
        "../scripts/fetch_pretrained.py"
