# Shared configuration, constants and input/target functions of every module (rules live in the
# other .smk files; keeping functions here keeps `snakemake --lint` clean).
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

# The kappaflow package lives beside the scripts; importable without installing it. Script jobs
# run a copy under .snakemake/scripts/, where an editable install (maybe of another clone) would
# win: PYTHONPATH puts this checkout's package first for them too (jobs re-read this file). It is
# set, not required, hence no envvars directive.
SCRIPTS_DIR = str(Path(workflow.basedir) / "workflow" / "scripts")
sys.path.insert(0, SCRIPTS_DIR)
PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SCRIPTS_DIR]
os.environ.update(PYTHONPATH=os.pathsep.join([SCRIPTS_DIR, *PYTHONPATH]))

from kappaflow import protocol
from kappaflow.config_keys import unknown_keys_message
from kappaflow.sources.pretrained import BACKBONE_FILES
from kappaflow.training.options import spec_options


configfile: Path(workflow.basedir) / "config" / "config.yaml"


# Snakemake's own message on an unknown key buries it in a dump of the whole schema: name it first.
CONFIG_SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
UNKNOWN_KEYS = unknown_keys_message(
    config, CONFIG_SCHEMA, workflow.configfiles, workflow.config_settings.config
)
if UNKNOWN_KEYS:
    raise WorkflowError(UNKNOWN_KEYS)
validate(config, schema="../schemas/config.schema.yaml")

GRAPH_DATASETS = list(protocol.DATASET_KEYS)
HQ_DATASETS = list(protocol.HQ_DATASETS)
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
from kappaflow.sources.aflow import mirror_cif, read_mirror_labels
from kappaflow.sources.materials_project import mirror_structure_files, read_hq_labels

AFLOW_LABELS = "resources/aflow_agl/labels.csv"

AFLOW_CIF_MANIFEST = "resources/aflow_agl/cif_manifest.csv"

MP_DATASET = "resources/mp/{dataset}.parquet"

MP_MANIFEST = "resources/mp/{dataset}.manifest.csv"

PRETRAINED_FILES = [f"{PRETRAINED}/model.json", f"{PRETRAINED}/state.pt"]


def data_targets():
    """Final outputs of this module for rule all."""
    return [
        AFLOW_LABELS,
        AFLOW_CIF_MANIFEST,
        *expand(MP_DATASET, dataset=HQ_DATASETS),
        *expand(MP_MANIFEST, dataset=HQ_DATASETS),
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


def hq_labels_url(wildcards):
    """The label CSV's URL when it is downloaded; None when it is a local file (an input)."""
    location = hq_labels_location(wildcards)
    return location if location.startswith(("http://", "https://")) else None


def hq_labels_input(wildcards):
    """The label CSV as an input when it is a local file (so that edits rerun the rule)."""
    return [] if hq_labels_url(wildcards) else [hq_labels_location(wildcards)]


def aflow_inputs(wildcards):
    """Mirror mode: the mirror's labels.csv and the CIFs of the selected entries (the first
    data.aflow_subset, sorted as the package does) that exist, so that a changed, added or deleted
    CIF reruns the rule (a deleted one becomes a quarantined row); nothing online."""
    if config["source"] != "mirror":
        return {"mirror_labels": [], "cifs": []}
    mirror = MIRROR_DIR / "aflow_agl"
    labels = mirror / "labels.csv"
    if not labels.is_file():  # reported by Snakemake as a missing input
        return {"mirror_labels": [str(labels)], "cifs": []}
    entries = dict.fromkeys(read_mirror_labels(mirror, config["data"]["aflow_subset"])["entry"])
    cifs = (mirror_cif(mirror, entry) for entry in entries)
    return {"mirror_labels": [str(labels)], "cifs": [str(cif) for cif in cifs if cif.is_file()]}


def mp_inputs(wildcards):
    """The label CSV when it is a local file and, in mirror mode, the mirror's structure JSONs of its
    ids that exist (a missing one becomes a null row, which validation quarantines)."""
    labels = hq_labels_input(wildcards)
    if config["source"] != "mirror" or not Path(labels[0]).is_file():
        return {"labels": labels, "structures": []}
    ids = list(read_hq_labels(labels[0])["mp_id"])
    structures = mirror_structure_files(ids, MIRROR_DIR / "mp" / "structures")
    return {"labels": labels, "structures": [str(path) for path in structures]}


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

#: What a training run's outputs depend on, besides its step, set and seed (never seeds, test sets,
#: GPUs or batch sizes of inference: those change no trained model).
RUN_OPTIONS = spec_options(TRAINING)


def graph_inputs(*set_names):
    """``{dataset key: graph parquet}`` needed by these training/test sets."""
    return {key: protocol.graph_file(key) for key in protocol.sources_of(set_names)}


def run_inputs(step, train_on, stage1_seed):
    """Graphs of the training set, the backbone (its weights unless step I starts from scratch) and, for
    step III, the stage-1 checkpoint of run ``stage1_seed``."""
    inputs = {**graph_inputs(train_on), "pretrained_json": f"{PRETRAINED}/model.json"}
    if protocol.STEP_INIT[step] != "random":
        inputs["pretrained_state"] = f"{PRETRAINED}/state.pt"
    if step == "III":
        inputs["stage1"] = f"{stage1_run_dir(stage1_seed)}/best.ckpt"
    return inputs


def stage1_run_dir(seed):
    """Folder of the stage-1 run of ``seed`` (:func:`kappaflow.protocol.stage1_run_dir`)."""
    return protocol.stage1_run_dir(seed, TRAINING["epochs"], TRAINING["stage1_epochs"])


def run_benchmark(rule, step, train_on, seed):
    """Benchmark file of one run's job of rule ``rule`` (train or evaluate_run)."""
    return f"logs/benchmarks/{rule}/step{step}_{train_on}_run{seed}.tsv"


def stage1_benchmark(seed):
    """Benchmark file of the job that trains the stage-1 run of ``seed`` (rule train or train_stage1)."""
    if stage1_run_dir(seed) == protocol.stage1_dir(seed):
        return f"logs/benchmarks/train_stage1/run{seed}.tsv"
    return run_benchmark("train", "II", "AFLOW", seed)


def train_inputs(wildcards):
    """Inputs of one training run (:func:`run_inputs`)."""
    return run_inputs(wildcards.step, wildcards.train_on, wildcards.seed)


def configured_runs(
    name, steps=TRAINING["steps"], train_sets=TRAINING["train_sets"], seeds=TRAINING["seeds"]
):
    """File ``name`` of every configured training run."""
    return [f"{protocol.run_dir(*run)}/{name}" for run in protocol.runs(steps, train_sets, seeds)]


def train_targets():
    """Final outputs of this module for rule all (AFLOW is not a step-III target)."""
    return [configured_runs(name) for name in ("best.ckpt", "metrics.csv", "run.json")]


# ---- evaluate.smk ----

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


def evaluation_inputs(wildcards):
    """A trained run's checkpoint, run.json and features, and the graphs of every test set."""
    folder = protocol.run_dir(wildcards.step, wildcards.train_on, wildcards.seed)
    return {
        "ckpt": f"{folder}/best.ckpt",
        "run_json": f"{folder}/run.json",
        "features": f"{folder}/features.parquet",
        **graph_inputs(*TRAINING["test_sets"]),
    }


def heldout_run_inputs(wildcards):
    """Inputs of one member of a held-out fold's ensemble (:func:`run_inputs`; step III: stage 1 of its seed)."""
    return run_inputs(wildcards.step, wildcards.train_on, wildcards.seed)


def heldout_members(name):
    """File ``name`` of every member (``heldout.seeds``) of the held-out fold of the wildcards."""

    def files(wildcards):
        folder = f"results/heldout/step{wildcards.step}/{wildcards.train_on}/fold{wildcards.fold}"
        return [f"{folder}/run{seed}/{name}" for seed in HELDOUT["seeds"]]

    return files


HELDOUT_FOLDS = [
    (step, train_on, fold)
    for step in HELDOUT["steps"]
    for train_on in HELDOUT["train_sets"]
    for fold in range(HELDOUT["folds"])
]


def heldout_ensembles():
    """The ensemble table of every held-out fold of every configured step and set."""
    return [
        f"results/heldout/step{step}/{train_on}/fold{fold}/ensemble.parquet"
        for step, train_on, fold in HELDOUT_FOLDS
    ]


def heldout_members_all(name):
    """File ``name`` of every member of every held-out fold."""
    return [
        f"results/heldout/step{step}/{train_on}/fold{fold}/run{seed}/{name}"
        for step, train_on, fold in HELDOUT_FOLDS
        for seed in HELDOUT["seeds"]
    ]


def heldout_covers(step, train_on):
    """Whether the held-out protocol cross-validates this ensemble's step and set."""
    return HELDOUT["enabled"] and step in HELDOUT["steps"] and train_on in HELDOUT["train_sets"]


def ensemble_trust_inputs(wildcards):
    """Every configured run's features and run.json, and the held-out calibration when it covers the ensemble."""
    runs = {"run_jsons": configured_runs("run.json", [wildcards.step], [wildcards.train_on])}
    runs["features"] = configured_runs("features.parquet", [wildcards.step], [wildcards.train_on])
    if heldout_covers(wildcards.step, wildcards.train_on):
        runs["heldout_trust"] = "results/heldout/trust.json"
    return runs


def uncalibrated_reason(step, train_on):
    """Why the ensemble of ``step`` on ``train_on`` has no held-out calibration ("" when it has one)."""
    if not HELDOUT["enabled"]:
        return "no held-out folds: heldout.enabled is false"
    if step not in HELDOUT["steps"] or train_on not in HELDOUT["train_sets"]:
        return f"no held-out folds for step {step} on {train_on} (heldout.steps, heldout.train_sets)"
    return ""


def ensemble_uncalibrated_reason(wildcards):
    """:func:`uncalibrated_reason` of an ensemble_trust job."""
    return uncalibrated_reason(wildcards.step, wildcards.train_on)


def ensemble_targets():
    """domain.parquet and trust.json of every configured ensemble."""
    return [
        f"{protocol.ensemble_dir(step, train_on)}/{name}"
        for step, train_on in protocol.ensembles(TRAINING["steps"], TRAINING["train_sets"])
        for name in ("domain.parquet", "trust.json")
    ]


#: Settings that say where or how the workflow ran, not what it computed: left out of results.md, so
#: that changing them does not rerun it.
EXECUTION_KEYS = {
    "mirror_dir": None,
    "training": ("gpus", "eval_batch_size"),
    "scan": ("batch_size",),
    "model": ("batch_size",),
}


def results_config():
    """The resolved configuration that results.md shows (without :data:`EXECUTION_KEYS`)."""
    shown = json.loads(json.dumps(config))
    for section, keys in EXECUTION_KEYS.items():
        if keys is None:
            shown.pop(section, None)
        for key in keys or ():
            shown[section].pop(key, None)
    return shown


def results_benchmarks():
    """Benchmarks of the jobs whose wall time results.md reports: data, graphs, training, evaluation."""
    runs = list(protocol.runs(TRAINING["steps"], TRAINING["train_sets"], TRAINING["seeds"]))
    files = [run_benchmark(rule, *run) for rule in ("train", "evaluate_run") for run in runs]
    if "III" in TRAINING["steps"]:
        files += [stage1_benchmark(seed) for seed in TRAINING["seeds"]]
    files += [
        f"logs/benchmarks/{rule}/{key}.tsv" for rule in ("validate", "featurize") for key in GRAPH_DATASETS
    ]
    files += [
        f"logs/benchmarks/finetune_backbone/{backbone}_step{step}_{train_on}_run{seed}.tsv"
        for backbone, step, train_on, seed in FINETUNE_RUNS
    ]
    files += [
        f"logs/benchmarks/finetune_stage1/{backbone}_run{seed}.tsv" for backbone, seed in FINETUNE_STAGE1_RUNS
    ]
    files += [
        f"logs/benchmarks/finetune_heldout_run/{backbone}_step{step}_{train_on}_fold{fold}_run{seed}.tsv"
        for backbone, step, train_on, fold, seed in FINETUNE_HELDOUT_RUNS
    ]
    if FROZEN["enabled"]:
        files += [
            f"logs/benchmarks/{rule}/{backbone}.tsv"
            for rule in ("represent", "frozen_protocols")
            for backbone in MODEL["backbones"]
        ]
    if HELDOUT["enabled"]:
        files += [
            f"logs/benchmarks/heldout_run/step{step}/{train_on}/fold{fold}/run{seed}.tsv"
            for step, train_on, fold in HELDOUT_FOLDS
            for seed in HELDOUT["seeds"]
        ]
    return list(dict.fromkeys(files))  # a stage-1 run may be a configured step-II run on AFLOW


def evaluate_targets():
    """Final outputs of this module for rule all."""
    targets = [
        "results/docs/results.md",
        configured_runs("predictions.parquet"),
        *ensemble_targets(),
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
            "results/tables/calibration.csv",
            "results/tables/calibration.md",
            "results/figures/calibration.png",
        ]
    return targets


# ---- backbones.smk ----

MODEL = config["model"]
FROZEN = MODEL["frozen"]
#: The backbones compared by frozen-representation regression.
FROZEN_BACKBONES = MODEL["backbones"] if FROZEN["enabled"] else []

#: Backbone folders other than MEGNet's (rule pretrained_megnet fetches that one).
BACKBONE_MODEL_FOLDERS = sorted(
    folder for folder in protocol.BACKBONE_FOLDERS.values() if folder and folder != Path(PRETRAINED).name
)


def backbone_model_files(backbone):
    """The pretrained files ``backbone`` reads from resources/pretrained/ (none for a wheel-shipped one)."""
    folder = protocol.BACKBONE_FOLDERS[backbone]
    if folder is None:
        return []
    if folder == Path(PRETRAINED).name:
        return PRETRAINED_FILES
    return [f"resources/pretrained/{folder}/{name}" for name in BACKBONE_FILES]


def representation_files(backbone, suffix="parquet"):
    """The representation tables (or their rejects) of one backbone, one per dataset key."""
    return [f"results/representations/{backbone}/{key}.{suffix}" for key in GRAPH_DATASETS]


FINETUNE = MODEL["finetune"]
#: (backbone, step, train_on, seed) of every fine-tuning of a backbone other than MEGNet (no step III on AFLOW).
FINETUNE_RUNS = [
    (backbone, step, train_on, seed)
    for backbone in FINETUNE["backbones"]
    for step, train_on, seed in protocol.runs(FINETUNE["steps"], FINETUNE["train_sets"], FINETUNE["seeds"])
]
#: (backbone, step, train_on, fold, seed) of every held-out fine-tuning: the steps that heldout.steps lists too,
#: on the sets that heldout.train_sets lists too.
FINETUNE_HELDOUT_RUNS = [
    (backbone, step, train_on, fold, seed)
    for backbone in FINETUNE["backbones"]
    for step, train_on in protocol.ensembles(FINETUNE["steps"], FINETUNE["train_sets"])
    if HELDOUT["enabled"]
    and FINETUNE["heldout"]
    and step in HELDOUT["steps"]
    and train_on in HELDOUT["train_sets"]
    for fold in range(HELDOUT["folds"])
    for seed in HELDOUT["seeds"]
]

#: (backbone, seed) of the stage-1 runs (AFLOW) that the step-III fine-tunings start from.
FINETUNE_STAGE1_RUNS = sorted(
    {(run[0], run[-1]) for run in [*FINETUNE_RUNS, *FINETUNE_HELDOUT_RUNS] if run[1] == "III"}
)


def finetune_inputs(backbone, step, train_on, seed):
    """Inputs of one fine-tuning: the training set's structure tables, the backbone's pretrained files and, for
    step III, the stage-1 checkpoint of the run with this seed."""
    inputs = {
        "data": [f"results/data/{key}.parquet" for key in protocol.sources_of([train_on])],
        "model": backbone_model_files(backbone),
    }
    if step == "III":
        inputs["stage1"] = f"{protocol.finetuned_stage1_dir(backbone, seed)}/best.ckpt"
    return inputs


def finetune_outputs(folder):
    """The named outputs of one fine-tuning run in ``folder``."""
    names = {
        "ckpt": "best.ckpt",
        "metrics": "metrics.csv",
        "run_json": "run.json",
        "predictions": "predictions.parquet",
        "features": "features.parquet",
        "rejected": "rejected.csv",
    }
    return {key: f"{folder}/{name}" for key, name in names.items()}


def finetuned_heldout_files():
    """The fold ensembles' predictions of every backbone, step and set fine-tuned under the held-out protocol."""
    ensembles = dict.fromkeys(run[:3] for run in FINETUNE_HELDOUT_RUNS)
    return [f"{protocol.finetuned_dir(*ensemble)}/heldout_predictions.parquet" for ensemble in ensembles]


def finetuned_fold_members(name):
    """Input function: file ``name`` of the held-out runs that one backbone's fold ensembles of one step and set
    join, fold by fold."""

    def files(wildcards):
        folder = protocol.finetuned_dir(wildcards.backbone, wildcards.step, wildcards.train_on)
        return [
            f"{folder}/fold{fold}/run{seed}/{name}"
            for fold in range(HELDOUT["folds"])
            for seed in HELDOUT["seeds"]
        ]

    return files


def finetune_heldout_covers(step, train_on):
    """Whether the held-out protocol cross-validates the fine-tuned backbones' ensembles of this step and set."""
    return FINETUNE["heldout"] and heldout_covers(step, train_on)


def finetune_trust_inputs(wildcards):
    """The paper runs' run.json and features of one fine-tuned backbone's ensemble, and its held-out fold
    ensembles when the held-out protocol covers it."""
    folder = protocol.finetuned_dir(wildcards.backbone, wildcards.step, wildcards.train_on)
    inputs = {
        name: [f"{folder}/run{seed}/{file}" for seed in FINETUNE["seeds"]]
        for name, file in (("run_jsons", "run.json"), ("features", "features.parquet"))
    }
    if finetune_heldout_covers(wildcards.step, wildcards.train_on):
        inputs["heldout"] = f"{folder}/heldout_predictions.parquet"
    return inputs


def finetune_trust_params(wildcards):
    """Why a fine-tuned ensemble has no held-out calibration ("" when it has one), and the domain threshold's
    error factor when it has."""
    if finetune_heldout_covers(wildcards.step, wildcards.train_on):
        return {"uncalibrated": "", "error_factor": HELDOUT["domain_error_factor"]}
    reason = uncalibrated_reason(wildcards.step, wildcards.train_on)
    return {
        "uncalibrated": reason or "no held-out folds: model.finetune.heldout is false",
        "error_factor": None,
    }


def finetuned_trust_files():
    """domain.parquet and trust.json of every fine-tuned backbone's ensemble of the paper protocol."""
    ensembles = dict.fromkeys(run[:3] for run in FINETUNE_RUNS)
    return [
        f"{protocol.finetuned_dir(*ensemble)}/{name}"
        for ensemble in ensembles
        for name in ("domain.parquet", "trust.json")
    ]


def finetuned_files(name):
    """File ``name`` of every configured paper-protocol fine-tuning run."""
    return [
        f"{protocol.finetuned_dir(backbone, step, train_on)}/run{seed}/{name}"
        for backbone, step, train_on, seed in FINETUNE_RUNS
    ]


#: Whether the run compares backbones (frozen representations or other backbones fine-tuned): then the
#: backbone comparison is built and the results document shows it.
COMPARES_BACKBONES = bool(FROZEN_BACKBONES or FINETUNE_RUNS or FINETUNE_HELDOUT_RUNS)


def frozen_targets():
    """Frozen-representation outputs and fine-tuned runs of the configured backbones, and their comparison."""
    files = finetuned_files("predictions.parquet") + finetuned_heldout_files() + finetuned_trust_files()
    files += [
        f"results/frozen/{backbone}/{name}"
        for backbone in FROZEN_BACKBONES
        for name in ("paper_predictions.parquet", "heldout_predictions.parquet")
    ]
    if COMPARES_BACKBONES:
        files += ["results/tables/backbone_comparison.csv", "results/tables/backbone_comparison.md"]
    return files


# ---- scan.smk ----
import pandas as pd

from kappaflow.scan import chunk_rows

SCAN = config["scan"]

SCAN_MODELS = {
    f"step{SCAN['step']}/{name}": protocol.ensemble_dir(SCAN["step"], name) for name in SCAN["train_sets"]
}


def scan_screening_source(wildcards):
    """The screening CSV of a mirror run (the configured one, else the mirror's); nothing online."""
    if config["source"] == "online":
        return []
    return str(
        repo_path(SCAN["screening_set"]) if SCAN["screening_set"] else MIRROR_DIR / "mp" / "screening_set.csv"
    )


def scan_model_checkpoints():
    """best.ckpt and run.json of every run of every scanned ensemble, and the ensembles' domain and trust files."""
    return (
        configured_runs("best.ckpt", [SCAN["step"]], SCAN["train_sets"])
        + configured_runs("run.json", [SCAN["step"]], SCAN["train_sets"])
        + [
            f"{protocol.ensemble_dir(SCAN['step'], name)}/{file}"
            for name in SCAN["train_sets"]
            for file in ("domain.parquet", "trust.json")
        ]
    )


def scan_chunk_structures(wildcards):
    """Mirror structure JSONs of one chunk's materials (those that exist; the rest are rejected rows)."""
    if config["source"] == "online":
        return []
    screening = pd.read_csv(checkpoints.scan_screening_set.get().output[0], dtype={"mp_id": str})
    ids = list(chunk_rows(screening, int(wildcards.chunk), SCAN["chunk_size"])["mp_id"])
    return [str(path) for path in mirror_structure_files(ids, MIRROR_DIR / "mp" / "structures")]


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
    """Final outputs of this module for rule all (none when scan.enabled is false)."""
    if not SCAN["enabled"]:
        return []
    return [
        "results/scan/screening_predictions.csv",
        "results/scan/low_kappa_candidates.csv",
        "results/scan/rejected.csv",
        "results/figures/scan_low_kappa.png",
        "results/figures/scan_low_kappa.pdf",
    ]


# ---- ship.smk ----

SHIP = config["ship"]
SHIPPED_MODEL = protocol.SHIPPED_MODEL
if SHIP["enabled"]:
    if not protocol.has_run(SHIP["step"], SHIP["train_on"]) or SHIP["step"] not in TRAINING["steps"]:
        raise WorkflowError(
            f"ship: step {SHIP['step']} on {SHIP['train_on']} is not trained (training.steps, "
            "training.train_sets; no step III on AFLOW); choose a trained ensemble or set ship.enabled: false"
        )
    if SHIP["train_on"] not in TRAINING["train_sets"]:
        raise WorkflowError(f"ship.train_on {SHIP['train_on']} is not in training.train_sets")


def ship_inputs(wildcards):
    """The shipped ensemble's runs and trust files, its held-out tables and its training materials."""
    step, train_on = SHIP["step"], SHIP["train_on"]
    ensemble = protocol.ensemble_dir(step, train_on)
    inputs = {
        "checkpoints": configured_runs("best.ckpt", [step], [train_on]),
        "run_jsons": configured_runs("run.json", [step], [train_on]),
        "domain": f"{ensemble}/domain.parquet",
        "trust": f"{ensemble}/trust.json",
        "data": [f"results/data/{key}.parquet" for key in protocol.sources_of([train_on])],
    }
    if heldout_covers(step, train_on):
        inputs["heldout_table"] = "results/tables/heldout_table.csv"
        inputs["calibration"] = "results/tables/calibration.csv"
    return inputs


def ship_config():
    """The configuration a shipped model's card records: what its runs and held-out numbers depend on."""
    shown = results_config()
    training = {
        key: value
        for key, value in shown["training"].items()
        if key not in ("steps", "train_sets", "test_sets")
    }
    return {
        "data": shown["data"],
        "training": training,
        "heldout": shown["heldout"],
        "ship": shown["ship"],
    }


def ship_targets():
    """Final outputs of this module for rule all."""
    return [SHIPPED_MODEL] if SHIP["enabled"] else []
