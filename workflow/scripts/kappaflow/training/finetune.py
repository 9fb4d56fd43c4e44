"""Fine-tuning a backbone other than MEGNet like steps II and III, under the paper's or the held-out protocol: one run.

The run splits the training set's validated structures (``results/data/<key>.parquet``) exactly as steps I-III,
their held-out folds and the frozen regressions do (on every validated material, so runs pair by seed and
fold), leaves out the structures the backbone cannot take (``rejected.csv``, with the reason), trains a
:class:`~kappaflow.backbones.network.BackboneNet` (pretrained backbone, fresh head) with the training section's
optimiser, target and loss (:class:`~kappaflow.training.module.KappaModule`), and keeps the epoch of lowest
validation MAPE. Step II starts from the pretrained backbone and a fresh head; a stage-1 run is step II on AFLOW;
step III (stage 2) starts from every weight of the stage-1 run with the same seed (``init_checkpoint``), with a
scaler and optimiser of its own, as the MEGNet runs do. Paper protocol: the split of :func:`kappaflow.training.splits.split_indices`, and the run
predicts its own validation split, the paper's test set. Held-out protocol (``spec.fold``): the inner split of
:func:`kappaflow.heldout.fold_indices`, and the run predicts the outer test fold, which it never saw.

Outputs in ``out_dir`` (:func:`kappaflow.protocol.finetuned_dir` ``/[fold<f>/]run<seed>/``, or
:func:`kappaflow.protocol.finetuned_stage1_dir`): ``best.ckpt``,
``metrics.csv``, ``run.json``, ``predictions.parquet`` (:data:`PREDICTION_COLUMNS`, or
:data:`HELDOUT_COLUMNS` for a fold), ``features.parquet`` (the best network's representation of the materials
of each part, :func:`kappaflow.domain.features_frame`: its ensemble's applicability domain) and
``rejected.csv``. Resume state lives in ``<out_dir>.partial/`` as for the MEGNet runs
(:func:`kappaflow.training.runner.prepare_partial`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from pymatgen.core import Structure

from kappaflow.backbones import Backbone, load_backbone
from kappaflow.backbones.network import BackboneNet, backbone_net_from_config
from kappaflow.domain import DOMAIN_COLUMNS, features_frame
from kappaflow.frozen import screen
from kappaflow.heldout import fold_domain, fold_indices
from kappaflow.protocol import DIVERGED, FAILED_STATUSES, FINETUNE_STEPS, OK, SET_SOURCES, relative_spread
from kappaflow.provenance import provenance
from kappaflow.training.checkpoint import export_checkpoint, model_state, read_checkpoint, training_elements
from kappaflow.training.data import BatchLoader
from kappaflow.training.health import collapsed_since, run_status
from kappaflow.training.module import CKPT_KEY, KappaModule, LoaderState
from kappaflow.training.runner import HISTORY_COLUMNS, best_of, prepare_partial
from kappaflow.training.scaling import TargetScaler
from kappaflow.training.splits import split_indices
from kappaflow.trust import log_spread

log = logging.getLogger(__name__)

#: The ``step`` of a stage-1 run (step II's protocol on AFLOW, the start of step III).
STAGE1 = "stage1"
PREDICTION_COLUMNS = ["step", "backbone", "train_on", "run", "test_on", "id", "formula", "kappa_true",
                      "kappa_pred", "status", "fit_s"]
#: One held-out run's predictions of its outer test fold (:func:`kappaflow.heldout.fold_frame` and more).
HELDOUT_COLUMNS = ["step", "backbone", "train_on", "fold", "seed", "id", "formula", "kappa_true", "kappa_pred",
                   "status", "fit_s"]
REJECTED_COLUMNS = ["id", "dataset", "reason"]


@dataclass(frozen=True)
class Fold:
    """Outer fold ``index`` of ``k`` (assigned with ``seed``) of the held-out protocol."""

    index: int
    k: int
    seed: int


@dataclass
class FinetuneSpec:
    """Everything that defines one fine-tuning run (a change restarts a partial run); ``fold``: held-out run."""

    backbone: str
    train_on: str
    seed: int
    out_dir: str
    data_paths: dict[str, str]  #: dataset key → validated structure table
    pretrained_root: str  #: folder of the matgl backbones' pretrained models
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
    fold: Fold | None = None
    step: str = "II"  #: ``II``, ``III`` (needs ``init_checkpoint``) or :data:`STAGE1`
    init_checkpoint: str | None = None  #: step III: the ``best.ckpt`` of the stage-1 run with this seed

    def __post_init__(self) -> None:
        if self.step not in (*FINETUNE_STEPS, STAGE1):
            raise ValueError(f"step must be one of {[*FINETUNE_STEPS, STAGE1]}, got {self.step!r}")
        if (self.step == "III") != bool(self.init_checkpoint):
            raise ValueError(f"step {self.step}: init_checkpoint (the stage-1 best.ckpt) is for step III and only "
                             f"step III, got {self.init_checkpoint!r}")


@dataclass
class Part:
    """The materials of one split part that the backbone takes."""

    materials: pd.DataFrame  #: ``id, dataset, formula, target``
    structures: list[Structure]

    def loader(self, net: BackboneNet, batch_size: int, shuffle: bool = False, seed: int = 0) -> BatchLoader:
        """``(StructureBatch, κ)`` batches of this part in the backbone's graph form."""
        return BatchLoader(self.materials["target"].to_numpy(float),
                           lambda idx: net.collate([self.structures[i] for i in idx]), batch_size, shuffle, seed)


def split_rows(ids: np.ndarray, name: str, seed: int, val_fraction: float, fold: Fold | None) -> list[np.ndarray]:
    """Row indices of the training, validation and test parts of one dataset key's table: the paper's split
    (its test part is its validation part) or the inner split and outer test of ``fold``."""
    if fold is None:
        train, val = split_indices(ids, seed, val_fraction, name=name)
        return [train, val, val]
    parts = fold_indices(ids, fold.index, fold.k, fold.seed, seed, val_fraction, name=name)
    return [parts.train, parts.val, parts.test]


def split_parts(
    backbone: Backbone, train_on: str, data_paths: dict[str, str], seed: int, val_fraction: float,
    fold: Fold | None = None,
) -> tuple[Part, Part, Part, pd.DataFrame]:
    """Training, validation and test parts of ``train_on`` (:func:`split_rows`), and the rows the backbone
    rejected.

    Raises:
        FileNotFoundError: a missing structure table.
        ValueError: a row without a finite, non-negative κ (named by id).
    """
    parts: tuple[list[pd.DataFrame], ...] = ([], [], [])
    structures: tuple[list[Structure], ...] = ([], [], [])
    rejected = []
    for key in SET_SOURCES[train_on]:
        path = Path(data_paths[key])
        if not path.is_file():
            raise FileNotFoundError(f"structure table of {key!r} not found: {path} (written by rule validate)")
        table = pd.read_parquet(path)
        bad = ~np.isfinite(table["target"].to_numpy(float)) | (table["target"].to_numpy(float) < 0)
        if bad.any():
            raise ValueError(f"{path}: {int(bad.sum())} rows without a finite, non-negative κ "
                             f"(e.g. {', '.join(table['id'][bad].head(5))})")
        rows_of_part = split_rows(table["id"].to_numpy(dtype=object), f"{train_on} ({key})", seed, val_fraction, fold)
        kept, taken, reasons = screen(table, backbone)
        rejected += [{**row, "dataset": key} for row in reasons]
        position = dict(zip(kept, taken, strict=True))
        for part_rows, frames, bucket in zip(rows_of_part, parts, structures, strict=True):
            rows = [int(i) for i in part_rows if int(i) in position]
            frames.append(table.iloc[rows][["id", "dataset", "formula", "target"]])
            bucket += [position[i] for i in rows]
    train, val, test = (Part(pd.concat(frames, ignore_index=True), bucket)
                        for frames, bucket in zip(parts, structures, strict=True))
    for name, part in (("training", train), ("validation", val), ("test", test)):
        if not len(part.materials):
            raise ValueError(f"{train_on}: the backbone {backbone.spec.name} takes no material of the {name} "
                             f"part of seed {seed}{'' if fold is None else f', fold {fold.index}'}")
    return train, val, test, pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def elements_of(structures: Sequence[Structure]) -> list[str]:
    """The elements of ``structures``, sorted by symbol."""
    return sorted({element.symbol for s in structures for element in s.composition.element_composition})


@torch.no_grad()
def predict_part(net: BackboneNet, scaler: TargetScaler, part: Part, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """κ (W/mK) of every material of ``part``, in order (``scaler``: the network's own), and the network's
    representation of each, ``(n, d)``: one pass through the backbone."""
    was_training = net.training
    net.eval()
    features = torch.cat([net.features(batch) for batch, _ in part.loader(net, batch_size)])
    kappa = scaler.inverse(net.head_output(features).double().cpu().numpy())
    net.train(was_training)
    return np.asarray(kappa, dtype=np.float64), features.double().cpu().numpy()


def features_table(parts: Sequence[tuple[str, Part, np.ndarray]]) -> pd.DataFrame:
    """The run's representation of the materials of its parts (``(name, part, features)``, as
    :func:`kappaflow.domain.features_frame`): what its ensemble's domain and fold distances are built from."""
    frames = [features_frame(part.materials["id"], part.materials["formula"], part.materials["target"],
                             [name] * len(part.materials), features) for name, part, features in parts]
    return pd.concat(frames, ignore_index=True)


def finetuned_model(
    checkpoint: dict[str, Any], pretrained_root: str | Path, device: str = "cpu"
) -> tuple[BackboneNet, TargetScaler]:
    """The fine-tuned network of a read checkpoint (eval mode; its backbone rebuilt from ``pretrained_root``)
    and the scaler stored with it."""
    meta = checkpoint[CKPT_KEY]
    backbone = load_backbone(meta["model_config"]["backbone"], Path(pretrained_root), device)
    net = backbone_net_from_config(meta["model_config"], backbone)
    net.load_state_dict(model_state(checkpoint), strict=True)
    return net.eval(), TargetScaler.from_dict(meta["scaler"])


def load_finetuned(path: str | Path, pretrained_root: str | Path, device: str = "cpu") -> tuple[BackboneNet, TargetScaler]:
    """:func:`finetuned_model` of the ``best.ckpt`` at ``path``."""
    return finetuned_model(read_checkpoint(path), pretrained_root, device)


def load_stage1(net: BackboneNet, path: str | Path) -> list[str]:
    """Load every weight (backbone and head) of the stage-1 run ``path`` into ``net``; return the elements that
    run learned from.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the stage-1 network is not ``net``'s (another backbone or head).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"stage-1 checkpoint not found: {path} (written by rule finetune_stage1)")
    checkpoint = read_checkpoint(path)
    config = checkpoint[CKPT_KEY]["model_config"]
    if config != net.config():
        raise ValueError(f"{path}: the stage-1 network {config} is not this run's {net.config()}")
    net.load_state_dict(model_state(checkpoint), strict=True)
    return list(training_elements(checkpoint) or ())


def predictions_frame(spec: FinetuneSpec, test: Part, kappa: np.ndarray, status: str, fit_s: float) -> pd.DataFrame:
    """The run's predictions of its test part: :data:`PREDICTION_COLUMNS`, or :data:`HELDOUT_COLUMNS` for a fold."""
    materials = test.materials
    columns = {
        "step": spec.step, "backbone": spec.backbone, "train_on": spec.train_on, "id": materials["id"],
        "formula": materials["formula"], "kappa_true": materials["target"].astype(float), "kappa_pred": kappa,
        "status": status, "fit_s": fit_s,
    }
    if spec.fold is None:
        return pd.DataFrame({**columns, "run": spec.seed, "test_on": spec.train_on}, columns=PREDICTION_COLUMNS)
    return pd.DataFrame({**columns, "fold": spec.fold.index, "seed": spec.seed}, columns=HELDOUT_COLUMNS)


def finetune_run(spec: FinetuneSpec, callbacks: Sequence[Callback] = (), progress_bar: bool | None = None) -> str:
    """Train and evaluate one run as ``spec`` says, write its outputs (module docstring); return its status."""
    start = time.perf_counter()
    out_dir = Path(spec.out_dir)
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = load_backbone(spec.backbone, Path(spec.pretrained_root), device)
    train, val, test, rejected = split_parts(backbone, spec.train_on, spec.data_paths, spec.seed, spec.val_fraction,
                                             spec.fold)
    scaler = TargetScaler.fit(train.materials["target"].to_numpy(float), spec.target)
    net = BackboneNet(backbone, spec.head_hidden, spec.freeze_backbone)
    stage1_elements = load_stage1(net, spec.init_checkpoint) if spec.init_checkpoint else []
    elements = sorted({*elements_of(train.structures), *stage1_elements})
    module = KappaModule(net, scaler, spec.lr, spec.lr_decay_epochs or spec.epochs, spec.lr_min_factor,
                         spec.collapse_patience, spec.loss, spec.grad_clip_norm, elements)
    folder, last = prepare_partial(spec)
    best_cb = ModelCheckpoint(dirpath=folder, filename="best-{epoch:04d}", monitor="val_loss", mode="min",
                              save_top_k=1, save_last=True, enable_version_counter=False)
    train_loader = train.loader(net, spec.batch_size, shuffle=True, seed=spec.seed)
    trainer = pl.Trainer(
        max_epochs=spec.epochs, accelerator=device, devices=1, logger=False,
        callbacks=[*callbacks, LoaderState(train_loader), best_cb],
        enable_progress_bar=sys.stderr.isatty() if progress_bar is None else progress_bar,
        enable_model_summary=False, num_sanity_val_steps=0, deterministic="warn", default_root_dir=folder,
    )
    if last is not None:
        log.info("resuming %s from %s", out_dir, last)
    trainer.fit(module, train_loader, val.loader(net, spec.batch_size), ckpt_path=last)
    best_path = Path(best_cb.best_model_path) if best_cb.best_model_path else folder / "last.ckpt"
    best_epoch, best_val = best_of(module.history)
    checkpoint = read_checkpoint(best_path)
    net.load_state_dict(model_state(checkpoint), strict=True)
    kappa, test_features = predict_part(net, scaler, test, spec.batch_size)
    collapsed_at = collapsed_since(module.history)
    represented = [("train", train, predict_part(net, scaler, train, spec.batch_size)[1])]
    if spec.fold is None:  # the paper's test part is its validation part
        val_kappa = kappa
        represented.append(("val", val, test_features))
    else:
        val_kappa, val_features = predict_part(net, scaler, val, spec.batch_size)
        represented += [("val", val, val_features), ("test", test, test_features)]
    status = run_status(module.status == DIVERGED or best_epoch is None, val_kappa, collapsed_at)
    wall_s = round(time.perf_counter() - start, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    export_checkpoint(best_path, out_dir / "best.ckpt")
    pd.DataFrame(module.history, columns=HISTORY_COLUMNS).to_csv(out_dir / "metrics.csv", index=False)
    rejected.to_csv(out_dir / "rejected.csv", index=False)
    predictions_frame(spec, test, kappa, status, wall_s).to_parquet(out_dir / "predictions.parquet", index=False)
    features_table(represented).to_parquet(out_dir / "features.parquet", index=False)
    info = {
        "step": spec.step, "init_checkpoint": spec.init_checkpoint, "backbone": spec.backbone,
        "train_on": spec.train_on, "seed": spec.seed,
        "fold": None if spec.fold is None else spec.fold.index, "status": status,
        "best_epoch": best_epoch, "best_val_loss": best_val, "wall_s": wall_s, "n_train": len(train.materials),
        "n_val": len(val.materials), "n_rejected": len(rejected), "scaler": scaler.to_dict(),
        "epochs_run": len(module.history), "collapsed_at_epoch": collapsed_at, "resumed": last is not None,
        "val_pred_rel_std": relative_spread(val_kappa), "device": str(trainer.strategy.root_device),
        "training_elements": elements, "kappaflow": provenance(),
    }
    info = {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in info.items()}
    (out_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    if status != OK:
        log.warning("%s step %s on %s, run %d is %s", spec.backbone, spec.step, spec.train_on, spec.seed, status)
    return status


#: One row per material of a held-out set: the mean κ of its fold's usable members, their spread and the closest
#: material they fitted on.
ENSEMBLE_COLUMNS = ["step", "backbone", "train_on", "fold", "id", "formula", "kappa_true", "kappa_pred", "log_std",
                    "n_models", *DOMAIN_COLUMNS, "status"]


def member_spread(kappa: pd.Series) -> float:
    """:func:`kappaflow.trust.log_spread` of one material's member predictions."""
    return float(log_spread(kappa.to_numpy(dtype=float)[:, None])[0])


def heldout_ensemble(runs: Sequence[pd.DataFrame], features: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Every fold's members (held-out run predictions, :data:`HELDOUT_COLUMNS`, and their ``features.parquet``
    tables, in the same order) joined into the fold ensemble's predictions: the mean κ of the members that neither
    collapsed nor diverged (as ``kappaflow predict`` and the MEGNet fold ensembles leave those out), their spread
    ``log_std`` (:func:`kappaflow.trust.log_spread`: std of log10 κ, NaN with fewer than two physical members)
    and the closest material they fitted on (:func:`kappaflow.heldout.fold_domain`); a material whose fold has
    no usable member keeps NaN and the members' status."""
    rows = pd.concat(runs, ignore_index=True)
    keys = ["step", "backbone", "train_on", "fold", "id", "formula", "kappa_true"]
    usable = rows[~rows["status"].isin(FAILED_STATUSES)]
    mean = usable.groupby(keys, as_index=False, sort=False).agg(
        kappa_pred=("kappa_pred", "mean"), log_std=("kappa_pred", member_spread), n_models=("kappa_pred", "size"))
    everything = rows.groupby(keys, as_index=False, sort=False).agg(status=("status", "first"))
    table = everything.merge(mean, on=keys, how="left").merge(fold_domains(runs, features), on=["fold", "id"],
                                                             how="left")
    table["n_models"] = table["n_models"].fillna(0).astype(int)
    table.loc[table["n_models"] > 0, "status"] = OK
    return table[ENSEMBLE_COLUMNS].astype({"nearest_distance": float, "nearest_kappa_wmk": float})


def fold_domains(runs: Sequence[pd.DataFrame], features: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``fold, id`` and :data:`~kappaflow.domain.DOMAIN_COLUMNS` of every fold's test materials, from the
    fold's usable members (none for a fold without one)."""
    by_fold: dict[int, list[pd.DataFrame]] = {}
    for run, table in zip(runs, features, strict=True):
        if len(run) and run["status"].iloc[0] not in FAILED_STATUSES:
            by_fold.setdefault(int(run["fold"].iloc[0]), []).append(table)
    frames = []
    for fold, members in by_fold.items():
        ids = members[0]["id"][members[0]["part"] == "test"].tolist()
        frames.append(fold_domain(members, ids).assign(fold=fold, id=ids))
    if not frames:
        return pd.DataFrame({"fold": pd.Series(dtype=int), "id": pd.Series(dtype=object),
                             **{column: pd.Series(dtype=object) for column in DOMAIN_COLUMNS}})
    return pd.concat(frames, ignore_index=True)
