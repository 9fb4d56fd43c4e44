# Shared configuration, constants and input/target functions of every module (rules live in the
# other .smk files; keeping functions here keeps `snakemake --lint` clean).
import math
import sys
from pathlib import Path

from snakemake.utils import validate

# The kappaflow package lives beside the scripts; importable without installing it.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from kappaflow.training.options import spec_options
from kappaflow.training.sets import SET_SOURCES, sources_of


configfile: Path(workflow.basedir) / "config" / "config.yaml"


validate(config, schema="../schemas/config.schema.yaml")

GRAPH_DATASETS = ["aflow", "dataset1", "dataset2"]
HQ_DATASETS = ["dataset1", "dataset2"]
PRETRAINED = "resources/pretrained/MEGNet-MP-2018.6.1-Eform"


def repo_path(path):
    """A config path: absolute as given, relative ones against the repository root."""
    path = Path(path)
    return path if path.is_absolute() else (Path(workflow.basedir) / path).resolve()


MIRROR_DIR = repo_path(config["mirror_dir"])
if config["source"] == "mirror" and not MIRROR_DIR.is_dir():
    raise WorkflowError(
        f"source: mirror, but the mirror folder {MIRROR_DIR} does not exist; "
        "set mirror_dir or use source: online"
    )


# ---- data.smk ----
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
    return {key: config["online"][key] for key in (*keys, "timeout_s", "retries", "backoff_s")}


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


# ---- prepare.smk ----
def validation_inputs(wildcards):
    """The acquired table of a dataset; for AFLOW also the CIF manifest (the CIFs sit in cif/)."""
    if wildcards.dataset == "aflow":
        return {"table": AFLOW_LABELS, "manifest": AFLOW_CIF_MANIFEST}
    return {"table": MP_DATASET.format(dataset=wildcards.dataset)}


def prepare_targets():
    """Final outputs of this module for rule all."""
    return [
        "results/data/rejected.csv",
        "results/matching/aflow_hq_matches.csv",
        *expand("results/graphs/{dataset}.parquet", dataset=GRAPH_DATASETS),
    ]


# ---- train.smk ----

TRAINING = config["training"]


def train_run_dir(step, train_on, seed):
    """Output folder of one training run."""
    return f"results/models/step{step}/{train_on}/run{seed}"


def stage1_run_dir(seed):
    """Output folder of the stage-1 (AFLOW) run of step III with this seed."""
    return f"results/models/stage1/aflow/run{seed}"


def graph_inputs(*set_names):
    """Graph parquet files needed by these training/test sets."""
    return {key: f"results/graphs/{key}.parquet" for key in sources_of(set_names)}


def train_inputs(wildcards):
    """Graphs of the training set and every test set, the pretrained backbone, the stage-1 checkpoint."""
    inputs = {
        **graph_inputs(wildcards.train_on, *TRAINING["test_sets"]),
        "pretrained_json": f"{PRETRAINED}/model.json",
        "pretrained_state": f"{PRETRAINED}/state.pt",
    }
    if wildcards.step == "III":
        inputs["stage1"] = f"{stage1_run_dir(wildcards.seed)}/best.ckpt"
    return inputs


def train_targets():
    """Final outputs of this module for rule all (AFLOW is not a step-III target)."""
    return [
        f"{train_run_dir(step, train_on, seed)}/{name}"
        for step in TRAINING["steps"]
        for train_on in TRAINING["train_sets"]
        if not (step == "III" and train_on == "AFLOW")
        for seed in TRAINING["seeds"]
        for name in ("best.ckpt", "metrics.csv", "run.json", "predictions.parquet")
    ]


# ---- evaluate.smk ----

EVAL_STEPS = config["training"]["steps"]

EVAL_TRAIN_SETS = config["training"]["train_sets"]

EVAL_TEST_SETS = config["training"]["test_sets"]

EVAL_SEEDS = config["training"]["seeds"]

BASELINE = config["baseline"]

HELDOUT = config["heldout"]

PUBLISHED_TABLE = MIRROR_DIR / "reference" / "paraisite_table.csv"

FIGURES = ["loss_curves", "parity", "mape_heatmap", "step_bars", "agl_vs_abinitio"]

FIGURE_SOURCES = {
    "loss_curves": "results/tables/history.csv",
    "parity": "results/tables/predictions.parquet",
    "mape_heatmap": "results/tables/mape_table.csv",
    "step_bars": "results/tables/mape_table.csv",
    "agl_vs_abinitio": "results/matching/aflow_hq_matches.csv",
}


def graph_files(set_names):
    """``{dataset key: graph parquet}`` for the given set names."""
    return {key: f"results/graphs/{key}.parquet" for key in sources_of(set_names)}


def trained_runs(name):
    """``name`` (run.json, predictions.parquet, metrics.csv) of every configured run; no step III on AFLOW."""
    return [
        f"results/models/step{step}/{train_on}/run{seed}/{name}"
        for step in EVAL_STEPS
        for train_on in EVAL_TRAIN_SETS
        if not (step == "III" and train_on == "AFLOW")
        for seed in EVAL_SEEDS
    ]


def heldout_folds():
    """Per-fold held-out predictions of every configured step and set, and of the baseline."""
    folds = [
        f"results/heldout/step{step}/{train_on}/fold{fold}/predictions.parquet"
        for step in HELDOUT["steps"]
        for train_on in HELDOUT["train_sets"]
        for fold in range(HELDOUT["folds"])
    ]
    return folds + (["results/heldout/RF/predictions.parquet"] if BASELINE["enabled"] else [])


def evaluate_targets():
    """Final outputs of this module for rule all."""
    targets = [
        "results/tables/predictions.parquet",
        "results/tables/mape_table.csv",
        "results/tables/mape_table.md",
        "results/tables/vs_published.csv",
        "results/tables/vs_published.md",
        *expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"]),
    ]
    if HELDOUT["enabled"]:
        targets += [
            "results/tables/heldout_table.csv",
            "results/tables/heldout_table.md",
        ]
    return targets


# ---- scan.smk ----

SCAN = config["scan"]

SCAN_MODELS = {
    f"step{SCAN['step']}/{name}": f"results/models/step{SCAN['step']}/{name}" for name in SCAN["train_sets"]
}


def scan_screening_source(wildcards):
    """The screening CSV of a mirror run (the configured one, else the mirror's); nothing online."""
    if config["source"] == "online":
        return []
    return str(
        repo_path(SCAN["screening_set"]) if SCAN["screening_set"] else MIRROR_DIR / "mp" / "screening_set.csv"
    )


def scan_model_checkpoints():
    """best.ckpt of every run of every scanned ensemble."""
    return [
        f"{folder}/run{seed}/best.ckpt"
        for folder in SCAN_MODELS.values()
        for seed in config["training"]["seeds"]
    ]


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


def scan_targets():
    """Final outputs of this module for rule all."""
    return [
        "results/scan/screening_predictions.csv",
        "results/scan/low_kappa_candidates.csv",
        "results/scan/rejected.csv",
        "results/figures/scan_low_kappa.png",
        "results/figures/scan_low_kappa.pdf",
    ]
