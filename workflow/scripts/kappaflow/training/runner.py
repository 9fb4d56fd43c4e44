"""One training run end to end: split, scale, train (resumable), select the best epoch, check its health, write.

Outputs in ``out_dir`` (``results/models/step{I,II,III}/{train_on}/run{seed}/`` or
``results/models/stage1/aflow/run{seed}/``): ``best.ckpt``, ``metrics.csv``, ``run.json`` (with the
package version and commit that trained it) and ``features.parquet`` (the best model's representation of
every material of the training set, train and validation splits: what the ensemble's applicability
domain is measured against, :mod:`kappaflow.domain`). Evaluating the run on test sets is a separate job
(:mod:`kappaflow.training.evaluate`), so that adding a test set never retrains.

Resume state lives in the sibling folder ``<out_dir>.partial/`` (``last.ckpt``, the current best
checkpoint and ``spec.json``), which is not a declared Snakemake output, so Snakemake does not delete
it when a job fails or is killed. A rerun with the same spec and the same input files (each file the spec
names, compared by content: data tables, graphs, the stage-1 checkpoint) resumes from ``last.ckpt``; any
other rerun starts over. The folder is removed once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from kappaflow.allocator import retain_freed_memory
from kappaflow.domain import features_frame
from kappaflow.graphs import ELEMENT_TYPES, GraphSet
from kappaflow.model import build_kappanet
from kappaflow.training.checkpoint import (
    export_checkpoint,
    load_trained,
    model_state,
    read_checkpoint,
    training_elements,
)
from kappaflow.training.data import GraphLoader, read_graphs, split_set
from kappaflow.training.health import SPREAD_COLUMN, collapsed_since, run_status
from kappaflow.training.module import KappaModule, LoaderState
from kappaflow.training.predict import predict_kappa_features
from kappaflow.training.scaling import TargetScaler
from kappaflow.protocol import DIVERGED, OK, relative_spread, sources_of
from kappaflow.provenance import provenance
from kappaflow.sources.checksums import file_sha256

log = logging.getLogger(__name__)

#: Columns of ``metrics.csv`` (one row per epoch).
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", SPREAD_COLUMN]


@dataclass
class RunSpec:
    """Everything that defines one training run (a change restarts a partial run).

    Options without a default here take theirs from the config schema (the one place defaults live).

    ``init`` is ``"random"`` (step I), ``"pretrained"`` (step II, stage 1) or ``"checkpoint"``
    (step III stage 2: all weights from ``init_checkpoint``, a fresh scaler and optimizer).
    ``pretrained_dir`` always gives the backbone architecture (its ``model.json``);
    ``init_args`` overrides constructor arguments (tests use tiny backbones).
    ``collapse_patience``: stop after that many epochs in a row of constant validation predictions
    (a collapsed network, :mod:`kappaflow.training.health`); ``None`` trains every epoch regardless.
    """

    step: str
    train_on: str
    seed: int
    out_dir: str
    graph_paths: dict[str, str]
    pretrained_dir: str
    init: str
    epochs: int
    batch_size: int
    lr: float
    lr_decay_epochs: int | None
    lr_min_factor: float
    head_hidden: list[int]
    freeze_backbone: bool
    val_fraction: float
    collapse_patience: int | None
    target: str
    loss: str
    grad_clip_norm: float | None
    init_checkpoint: str | None = None
    init_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.init not in ("random", "pretrained", "checkpoint"):
            raise ValueError(f"init must be random, pretrained or checkpoint, got {self.init!r}")
        if self.init == "checkpoint" and not self.init_checkpoint:
            raise ValueError("init='checkpoint' needs init_checkpoint (the stage-1 best.ckpt)")


@dataclass
class RunResult:
    """What :func:`train_run` wrote."""

    status: str
    best_epoch: int | None
    best_val_loss: float | None
    out_dir: Path
    info: dict[str, Any]


def partial_dir(out_dir: str | Path) -> Path:
    """Resume folder of a run: ``<out_dir>.partial`` (a sibling, not a Snakemake output)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".partial")


def build_model(spec: RunSpec) -> torch.nn.Module:
    """The initial KappaNet of ``spec`` (random, pretrained or stage-1 weights)."""
    pretrained = Path(spec.pretrained_dir)
    if spec.init == "random" or spec.init_args:
        from kappaflow.backbone import read_init_args

        if spec.init == "pretrained":
            raise ValueError("init_args cannot be combined with init='pretrained'")
        args = {**read_init_args(pretrained), **spec.init_args}
        model = build_kappanet(None, spec.head_hidden, spec.freeze_backbone, init_args=args)
    else:
        model = build_kappanet(pretrained, spec.head_hidden, spec.freeze_backbone)
    if spec.init == "checkpoint":
        checkpoint = read_checkpoint(spec.init_checkpoint)
        model.load_state_dict(model_state(checkpoint), strict=True)
    return model


def named_files(value: Any) -> list[Path]:
    """The existing files that a spec's field values (strings, nested in dicts and lists) name."""
    if isinstance(value, str):
        return [Path(value)] if Path(value).is_file() else []
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [path for item in value for path in named_files(item)]
    return []


def prepare_partial(spec: Any) -> tuple[Path, Path | None]:
    """Create/validate the resume folder of a run spec dataclass with ``out_dir`` (:class:`RunSpec`,
    :class:`~kappaflow.training.finetune.FinetuneSpec`); return it and ``last.ckpt`` when one of the same spec
    and the same content of every file the spec names exists (folders it names are compared by name only)."""
    folder = partial_dir(spec.out_dir)
    spec_file = folder / "spec.json"
    fields = asdict(spec)
    inputs = {str(path): file_sha256(path) for path in named_files(list(fields.values()))}
    spec_json = json.dumps({"spec": fields, "input_sha256": inputs}, sort_keys=True, indent=1)
    last = folder / "last.ckpt"
    if folder.exists() and (not spec_file.is_file() or spec_file.read_text() != spec_json):
        log.warning("%s holds state of a different run spec or other input files: starting over", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(spec_json)
    return folder, (last if last.is_file() else None)


def require_backbone_cutoff(graphs: Mapping[str, GraphSet], paths: Mapping[str, str | Path], cutoff: float) -> None:
    """Raise ``ValueError`` naming the file when a graph set was built with another cutoff than the backbone's.

    A backbone's radial basis is fitted to its own cutoff: graphs of another one would train silently wrong.
    """
    for key, graph_set in graphs.items():
        if not math.isclose(graph_set.cutoff, cutoff, rel_tol=1e-9):
            raise ValueError(
                f"{paths[key]}: graphs built with a {graph_set.cutoff} Å cutoff, but the backbone's is {cutoff} Å "
                "(featurize the graphs with the fine-tuned backbone's cutoff, protocol.FINE_TUNED_CUTOFF)"
            )


def learned_elements(spec: RunSpec, train: GraphSet) -> list[str]:
    """Elements of the run's training split and, for a stage 2, of its stage 1's training data."""
    elements = {ELEMENT_TYPES[index] for index in np.unique(train.node_type)}
    if spec.init == "checkpoint":
        elements |= set(training_elements(read_checkpoint(spec.init_checkpoint)) or ())
    return sorted(elements)


def best_of(history: Sequence[dict[str, float]]) -> tuple[int | None, float | None]:
    """Epoch and value of the lowest finite validation loss (first one on ties, as ModelCheckpoint)."""
    finite = [row for row in history if math.isfinite(row["val_loss"])]
    if not finite:
        return None, None
    best = min(finite, key=lambda row: row["val_loss"])
    return int(best["epoch"]), float(best["val_loss"])


def train_run(
    spec: RunSpec,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool | None = None,
) -> RunResult:
    """Train one run as ``spec`` says and write its outputs (see the module docstring).

    Args:
        spec: the run.
        callbacks: extra Lightning callbacks (tests use one to simulate a kill).
        progress_bar: show Lightning's bar; default: only when stderr is a terminal.

    Raises:
        FileNotFoundError: missing graph file, pretrained model or stage-1 checkpoint.
        SplitError: a set too small to split.
    """
    start = time.perf_counter()
    retain_freed_memory()
    out_dir = Path(spec.out_dir)
    if spec.init == "checkpoint" and not Path(spec.init_checkpoint).is_file():
        raise FileNotFoundError(
            f"stage-1 checkpoint not found: {spec.init_checkpoint} (step III stage 2 of {spec.train_on}, "
            f"run {spec.seed}); run the stage-1 rule first"
        )
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    graphs = read_graphs({key: spec.graph_paths[key] for key in sources_of([spec.train_on])})
    split = split_set(spec.train_on, graphs, spec.seed, spec.val_fraction)
    scaler = TargetScaler.fit(split.train.targets, spec.target)
    model = build_model(spec)
    require_backbone_cutoff(graphs, spec.graph_paths, model.cutoff)
    elements = learned_elements(spec, split.train)
    module = KappaModule(
        model, scaler, spec.lr, spec.lr_decay_epochs or spec.epochs, spec.lr_min_factor, spec.collapse_patience,
        spec.loss, spec.grad_clip_norm, elements,
    )
    folder, last = prepare_partial(spec)
    best_cb = ModelCheckpoint(
        dirpath=folder, filename="best-{epoch:04d}", monitor="val_loss", mode="min", save_top_k=1,
        save_last=True, enable_version_counter=False,
    )
    train_loader = GraphLoader(split.train, spec.batch_size, shuffle=True, seed=spec.seed)
    trainer = pl.Trainer(
        max_epochs=spec.epochs,
        accelerator="auto",
        devices=1,
        logger=False,
        callbacks=[*callbacks, LoaderState(train_loader), best_cb],
        enable_progress_bar=sys.stderr.isatty() if progress_bar is None else progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic="warn",
        default_root_dir=folder,
    )
    if last is not None:
        log.info("resuming %s from %s", out_dir, last)
    trainer.fit(module, train_loader, GraphLoader(split.val, spec.batch_size), ckpt_path=last)
    best_path = Path(best_cb.best_model_path) if best_cb.best_model_path else folder / "last.ckpt"
    best_epoch, best_val = best_of(module.history)
    best_model, best_scaler = load_trained(best_path)
    trained_on = GraphSet.concat([graphs[key] for key in sources_of([spec.train_on])])
    trained_on_pred, features = predict_kappa_features(best_model, best_scaler, trained_on, spec.batch_size)
    is_val = np.isin(trained_on.ids, split.val.ids)
    own_val_pred = trained_on_pred[is_val]
    collapsed_at = collapsed_since(module.history)
    status = run_status(module.status == DIVERGED or best_epoch is None, own_val_pred, collapsed_at)
    if status != OK:
        log.warning("run %s/%s/run%d is %s (relative spread of validation predictions %.3g, collapsed since "
                    "epoch %s, kept checkpoint: epoch %s)", spec.step, spec.train_on, spec.seed, status,
                    relative_spread(own_val_pred), collapsed_at, best_epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    export_checkpoint(best_path, out_dir / "best.ckpt")
    pd.DataFrame(module.history, columns=HISTORY_COLUMNS).to_csv(
        out_dir / "metrics.csv", index=False
    )
    part = np.where(is_val, "val", "train")
    features_frame(trained_on.ids, trained_on.formulas, trained_on.targets, part, features).to_parquet(
        out_dir / "features.parquet", index=False
    )
    info = {
        "step": spec.step,
        "train_on": spec.train_on,
        "seed": spec.seed,
        "status": status,
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "wall_s": round(time.perf_counter() - start, 3),
        "n_train": len(split.train),
        "n_val": len(split.val),
        "scaler": best_scaler.to_dict(),
        "epochs_run": len(module.history),
        "collapsed_at_epoch": collapsed_at,
        "resumed": last is not None,
        "init": spec.init,
        "init_checkpoint": spec.init_checkpoint,
        "val_pred_rel_std": relative_spread(own_val_pred),
        "device": str(trainer.strategy.root_device),
        "val_fraction": spec.val_fraction,
        "training_elements": elements,
        "kappaflow": provenance(),
    }
    info = {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in info.items()}
    (out_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    return RunResult(status, best_epoch, best_val, out_dir, info)
