"""The protocol's vocabulary in one place: steps, set names, dataset keys, run statuses and run paths.

Light on purpose (numpy only, no torch): ``workflow/rules/common.smk`` imports it while Snakemake builds
the DAG, and the package and the tests import the same names, so that none of them is defined twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Training steps: I from scratch, II pretrained MEGNet, III pretrained + AFLOW stage 1.
STEPS: tuple[str, ...] = ("I", "II", "III")
#: How each step initialises its network (``"stage1"`` runs start from the pretrained backbone).
STEP_INIT: dict[str, str] = {"I": "random", "II": "pretrained", "III": "checkpoint", "stage1": "pretrained"}
#: Dataset keys (one validated table and one graph file each) behind each training/test set name.
SET_SOURCES: dict[str, tuple[str, ...]] = {
    "Dataset1": ("dataset1",),
    "Dataset2": ("dataset2",),
    "MIX": ("dataset1", "dataset2"),
    "AFLOW": ("aflow",),
}
#: Every dataset key, in the fixed order used wherever several appear together.
DATASET_KEYS: tuple[str, ...] = ("aflow", "dataset1", "dataset2")
#: The high-quality (ab-initio) dataset keys, whose structures come from the Materials Project.
HQ_DATASETS: tuple[str, ...] = ("dataset1", "dataset2")
#: Training sets of the held-out protocol (AFLOW is the stage-1 source, not a target).
HELDOUT_SETS: tuple[str, ...] = ("Dataset1", "Dataset2", "MIX")

OK, COLLAPSED, DIVERGED = "ok", "collapsed", "diverged"
#: Statuses that exclude a run from the means.
FAILED_STATUSES: tuple[str, ...] = (COLLAPSED, DIVERGED)
#: Relative spread of a model's predictions below which they count as constant (a collapsed network).
COLLAPSE_REL_STD = 1.0e-6


def relative_spread(values: Any) -> float:
    """``std / max(|mean|, 1e-12)`` of ``values``; NaN when any value is non-finite or there is none."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        return float("nan")
    return float(values.std() / max(abs(values.mean()), 1.0e-12))


def prediction_status(values: Any) -> str:
    """What a model's predictions say of it: ``diverged`` (non-finite), ``collapsed`` (constant) or ``ok``.

    The one definition of a collapsed network, used while training (per epoch), when a run ends and
    when runs are collected.
    """
    spread = relative_spread(values)
    if math.isnan(spread):
        return DIVERGED
    return COLLAPSED if spread < COLLAPSE_REL_STD else OK


def unphysical(kappa: Any) -> np.ndarray:
    """Whether each predicted κ (W/mK) is unphysical: ≤ 0, which the paper's log10(κ + 1) target allows
    (down to -1 W/mK). Such a value is flagged wherever it is written, never clipped."""
    return np.asarray(kappa, dtype=float) <= 0.0


def sources_of(names: Iterable[str]) -> list[str]:
    """Dataset keys needed by the given set names, in :data:`DATASET_KEYS` order."""
    names = list(names)
    unknown = sorted(set(names) - set(SET_SOURCES))
    if unknown:
        raise ValueError(f"unknown set name(s) {unknown}; expected one of {sorted(SET_SOURCES)}")
    keys = {key for name in names for key in SET_SOURCES[name]}
    return [key for key in DATASET_KEYS if key in keys]


def graph_file(key: str) -> str:
    """Graph parquet of one dataset key."""
    return f"results/graphs/{key}.parquet"


def graph_paths(named_inputs: Any) -> dict[str, str]:
    """``{dataset key: graph file}`` of a rule's named inputs (a Snakemake Namedlist, whose ``in``
    tests values, hence ``keys()``)."""
    names = set(named_inputs.keys())
    return {key: str(named_inputs[key]) for key in DATASET_KEYS if key in names}


def has_run(step: str, train_on: str) -> bool:
    """Whether the protocol trains ``step`` on ``train_on`` (no step III on AFLOW, its own stage 1)."""
    return not (step == "III" and train_on == "AFLOW")


#: Every pretrained backbone (config ``model.backbones``, :mod:`kappaflow.backbones`) → the mirror's
#: ``pretrained/`` folder its weights come from, or None for one whose package ships them. The paper's
#: MEGNet-2018 is the one the training steps fine-tune.
BACKBONE_FOLDERS: dict[str, str | None] = {
    "megnet-2018-eform": "MEGNet-MP-2018.6.1-Eform",
    "m3gnet-2018-eform": "M3GNet-MP-2018.6.1-Eform",
    "tensornet-matpes-2025": "TensorNet-MatPES-PBE-v2025.1-PES",
    "m3gnet-matpes-2025": "M3GNet-MatPES-PBE-v2025.1-PES",
    "chgnet-0.3.0": None,
    "sevennet-0": None,
}
FINE_TUNED_BACKBONE = "megnet-2018-eform"
#: Graph cutoff (Å) of :data:`FINE_TUNED_BACKBONE`, the one of the graphs that validation, featurization and the
#: scan build (tested equal to its spec's and to its pretrained ``model.json``'s): not a setting, since graphs
#: of another cutoff would feed its radial basis silently wrong inputs.
FINE_TUNED_CUTOFF = 4.0


#: Where the ``ship_model`` rule exports the shipped model, and where the package keeps it (``kappaflow predict``'s
#: default): ``cp -r results/shipped/model workflow/scripts/kappaflow/models/default``.
SHIPPED_MODEL = "results/shipped/model"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
#: Where ``kappaflow predict`` rebuilds a fine-tuned backbone other than MEGNet from by default: the workflow
#: directory's copy of the pretrained models (rules pretrained_megnet and pretrained_backbone).
DEFAULT_PRETRAINED_ROOT = Path("resources/pretrained")


def ensemble_dir(step: str, train_on: str) -> str:
    """Folder of one ensemble (what ``kappaflow predict --model`` takes): its runs, ``domain.parquet``, ``trust.json``."""
    return f"results/models/step{step}/{train_on}"


def run_dir(step: str, train_on: str, seed: int | str) -> str:
    """Folder of one trained run: ``best.ckpt``, ``metrics.csv``, ``run.json``, ``predictions.parquet``,
    ``features.parquet``."""
    return f"{ensemble_dir(step, train_on)}/run{seed}"


def stage1_dir(seed: int | str) -> str:
    """Folder of a stage-1 (AFLOW) run of its own (rule train_stage1), see :func:`stage1_run_dir`."""
    return f"results/models/stage1/aflow/run{seed}"


def stage1_run_dir(seed: int | str, epochs: int, stage1_epochs: int) -> str:
    """Folder of the stage-1 (AFLOW) run shared by every step-III run with this seed.

    When stage 1 trains as many epochs as the other steps, it is the step-II run on AFLOW of that seed: the
    same split, start (the pretrained backbone) and options, so the same run, trained once. Otherwise it is a
    run of its own (:func:`stage1_dir`).
    """
    return run_dir("II", "AFLOW", seed) if stage1_epochs == epochs else stage1_dir(seed)


#: Steps a backbone other than MEGNet is fine-tuned like (config ``model.finetune.steps``).
FINETUNE_STEPS: tuple[str, ...] = ("II", "III")


def finetuned_dir(backbone: str, step: str, train_on: str) -> str:
    """Folder of a fine-tuned backbone's runs of one step and training set (``run<seed>/``, ``fold<f>/run<seed>/``,
    ``heldout_predictions.parquet``)."""
    return f"results/finetuned/{backbone}/step{step}/{train_on}"


def finetuned_stage1_dir(backbone: str, seed: int | str) -> str:
    """Folder of a fine-tuned backbone's stage-1 (AFLOW) run shared by its step-III runs with this seed."""
    return f"results/finetuned/{backbone}/stage1/aflow/run{seed}"


def runs(steps: Iterable[str], train_sets: Iterable[str], seeds: Iterable[int]) -> Iterator[tuple[str, str, int]]:
    """Every ``(step, train_on, seed)`` the protocol trains for these settings."""
    train_sets, seeds = list(train_sets), list(seeds)
    for step in steps:
        for train_on in train_sets:
            if has_run(step, train_on):
                for seed in seeds:
                    yield step, train_on, seed


def ensembles(steps: Iterable[str], train_sets: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Every ``(step, train_on)`` ensemble the protocol trains for these settings."""
    train_sets = list(train_sets)
    for step in steps:
        for train_on in train_sets:
            if has_run(step, train_on):
                yield step, train_on
