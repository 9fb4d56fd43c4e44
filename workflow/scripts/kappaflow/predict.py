"""Ensemble prediction of κL: every run of one step/training set, loaded once, over batches of graphs.

An *ensemble* is a model folder ``results/models/step{I,II,III}/{train_set}/`` holding
``run{seed}/best.ckpt`` (runs whose ``run.json`` says ``collapsed`` or ``diverged`` are left out),
or a single run folder; or the same of a backbone other than MEGNet fine-tuned by the workflow
(``results/finetuned/{backbone}/step{II,III}/{train_set}/``, :class:`~kappaflow.backbones.network.BackboneNet`),
whose runs build the backbone's own graphs and rebuild it from its pretrained files (``pretrained_root``). Each model predicts κ (W/mK) with its own scaler; the ensemble reports the
mean and the sample standard deviation (``ddof=1``; NaN for a single model) over its models, and how far
each prediction can be trusted (:mod:`kappaflow.trust`: calibrated interval, closest training material,
``in_domain``) from the ``domain.parquet`` and ``trust.json`` the workflow writes beside the runs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pymatgen.core import Structure
from tqdm import tqdm

from kappaflow.backbones.network import KIND as FINE_TUNED_KIND
from kappaflow.backbones.network import BackboneNet
from kappaflow.graphs import (
    STRUCTURE_SCHEMA,
    GraphSet,
    featurize_table,
    graph_set_from_table,
    structure_to_record,
)
from kappaflow.domain import unseen_elements
from kappaflow.inputs import Item
from kappaflow.model import KappaNet
from kappaflow.protocol import BACKBONE_FOLDERS, DEFAULT_PRETRAINED_ROOT, FAILED_STATUSES, unphysical
from kappaflow.quotient import quotient
from kappaflow.training.checkpoint import read_checkpoint, trained_model, training_elements
from kappaflow.training.module import CKPT_KEY
from kappaflow.training.scaling import TargetScaler
from kappaflow.trust import TRUST_COLUMNS, Trust, read_trust, trust_columns
from kappaflow.validation import InvalidRow, Limits, check_structure

log = logging.getLogger(__name__)

#: ``unphysical``: some model of the ensemble predicts κ ≤ 0 W/mK (:func:`kappaflow.protocol.unphysical`).
#: ``unseen_elements``: elements of the structure absent from every run's training data (:func:`unseen_elements`).
#: Then the interval, nearest training material and ``in_domain`` (:data:`kappaflow.trust.TRUST_COLUMNS`).
RESULT_COLUMNS = ["input", "formula", "pred_mean_wmk", "pred_std_wmk", "n_models", "unphysical", "unseen_elements",
                  *TRUST_COLUMNS, "error"]
#: Structures featurized and predicted together (memory stays flat with the number of inputs).
BLOCK_SIZE = 2048
_RUN = re.compile(r"run(\d+)$")


class ModelError(Exception):
    """The model folder is missing or holds no usable checkpoint (a user-facing message)."""


@dataclass
class Ensemble:
    """The trained runs of one step/training set, loaded once, in eval mode on ``device``."""

    name: str
    runs: list[str]
    models: list[KappaNet] | list[BackboneNet]
    scalers: list[TargetScaler]
    device: torch.device
    #: Elements of the κ-labelled materials any run learned from; None if a run's checkpoint does not say.
    training_elements: frozenset[str] | None
    #: Domain reference and calibration of the ensemble (:func:`kappaflow.trust.read_trust`).
    trust: Trust

    def __len__(self) -> int:
        return len(self.models)

    @property
    def backbone(self) -> BackboneNet | None:
        """The first run when the runs are a fine-tuned backbone other than MEGNet, None for MEGNet's KappaNet."""
        first = self.models[0]
        return first if isinstance(first, BackboneNet) else None

    def unsupported(self, structure: Structure) -> str | None:
        """Why a fine-tuned backbone cannot take ``structure`` (its elements); None when it can, and always for
        MEGNet, whose limits :func:`checked_record` checks."""
        return None if self.backbone is None else self.backbone.backbone.supports(structure)

    @property
    def cutoff(self) -> float:
        """Graph cutoff (Å) of the backbone, the same for every run."""
        cutoffs = {model.cutoff for model in self.models}
        if len(cutoffs) != 1:
            raise ModelError(f"{self.name}: runs use different graph cutoffs {sorted(cutoffs)}")
        return cutoffs.pop()


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``; :class:`ModelError` if CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def _run_key(path: Path) -> tuple[int, str]:
    match = _RUN.search(path.parent.name)
    return (int(match.group(1)) if match else -1, path.parent.name)


def ensemble_checkpoints(model_dir: str | Path) -> list[Path]:
    """``best.ckpt`` of every usable run under ``model_dir`` (or of ``model_dir`` itself), by seed.

    Raises:
        ModelError: the folder does not exist or holds no usable checkpoint.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(
            f"model folder {model_dir} not found (trained ensembles live in "
            "results/models/step{I,II,III}/<Dataset1|Dataset2|MIX|AFLOW>)"
        )
    found = [model_dir / "best.ckpt"] if (model_dir / "best.ckpt").is_file() else []
    found += sorted(model_dir.glob("run*/best.ckpt"), key=_run_key)
    usable = usable_checkpoints(found)
    if not usable:
        raise ModelError(f"model folder {model_dir} holds no usable run*/best.ckpt")
    return usable


def usable_checkpoints(checkpoints: Sequence[str | Path]) -> list[Path]:
    """The checkpoints whose ``run.json`` (beside them) does not say ``collapsed`` or ``diverged``."""
    usable = []
    for path in map(Path, checkpoints):
        info = path.parent / "run.json"
        status = json.loads(info.read_text()).get("status", "ok") if info.is_file() else "ok"
        if status in FAILED_STATUSES:
            log.warning("%s: run %s is %s; left out of the ensemble", path.parent.parent, path.parent.name, status)
        else:
            usable.append(path)
    return usable


def _network(
    checkpoint: dict[str, object], path: Path, device: torch.device, pretrained_root: Path
) -> tuple[KappaNet | BackboneNet, TargetScaler]:
    """The trained network of a read checkpoint and its scaler: MEGNet's KappaNet, or a fine-tuned backbone
    rebuilt from its pretrained files under ``pretrained_root``."""
    config = checkpoint[CKPT_KEY]["model_config"]
    if config.get("kind") != FINE_TUNED_KIND:
        model, scaler = trained_model(checkpoint)
        return model.to(device), scaler
    from kappaflow.training.finetune import finetuned_model

    folder = BACKBONE_FOLDERS.get(config["backbone"])
    if folder and not (pretrained_root / folder).is_dir():
        raise ModelError(
            f"{path}: a fine-tuned {config['backbone']}, rebuilt from its pretrained files in {pretrained_root / folder}: "
            "not found (--pretrained-root: the workflow directory's resources/pretrained or the mirror's pretrained)"
        )
    return finetuned_model(checkpoint, pretrained_root, device.type)


def load_ensemble(
    model_dir: str | Path, device: torch.device | str = "cpu", name: str | None = None,
    pretrained_root: str | Path = DEFAULT_PRETRAINED_ROOT,
) -> Ensemble:
    """Load every usable run of ``model_dir`` once (see :func:`ensemble_checkpoints`); a fine-tuned backbone's
    runs rebuild it from ``pretrained_root`` (a wheel-shipped backbone needs none).

    Raises:
        ModelError: no usable run, a checkpoint that cannot be loaded, or runs of different networks.
    """
    device = torch.device(device)
    paths = ensemble_checkpoints(model_dir)
    models, scalers, elements = [], [], []
    for path in paths:
        try:
            checkpoint = read_checkpoint(path)
            model, scaler = _network(checkpoint, path, device, Path(pretrained_root))
            elements.append(training_elements(checkpoint))
        except ValueError as error:  # read_checkpoint names the file and why
            raise ModelError(str(error)) from None
        except (RuntimeError, OSError, KeyError) as error:
            raise ModelError(f"{path}: not a loadable kappaflow checkpoint ({type(error).__name__}: {error})") from None
        models.append(model.eval())
        scalers.append(scaler)
    kinds = {model.backbone.spec.name if isinstance(model, BackboneNet) else "megnet" for model in models}
    if len(kinds) > 1:
        raise ModelError(f"model folder {model_dir} mixes runs of different networks ({', '.join(sorted(kinds))})")
    label = name or "/".join(Path(model_dir).resolve().parts[-2:])
    known = None if None in elements else frozenset().union(*elements)
    runs = [path.parent.name for path in paths]
    return Ensemble(label, runs, models, scalers, device, known, read_trust(model_dir, runs))


def graph_set(records: Sequence[dict[str, object]], cutoff: float) -> GraphSet:
    """Featurize structure records (``STRUCTURE_SCHEMA`` columns) into a :class:`GraphSet`."""
    table = pa.Table.from_pylist(list(records), schema=STRUCTURE_SCHEMA)
    return graph_set_from_table(featurize_table(table, cutoff))


def ensemble_outputs(ensemble: Ensemble, graphs: GraphSet, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """κ (W/mK) of every model for every graph, ``(n_models, n_graphs)``, and their backbone features,
    ``(n_models, n_graphs, d)``.

    Each batch is collated (and moved to the device) once and run through every model, under
    ``torch.inference_mode`` (no autograd bookkeeping); the edge-length basis expansion, which has no
    trainable parameter, is computed once per batch when every model uses the same one. Graphs are
    reduced to their quotient graphs first (:mod:`kappaflow.quotient`).
    """
    first = ensemble.models[0]
    if len(graphs) == 0:
        return np.zeros((len(ensemble), 0)), np.zeros((len(ensemble), 0, first.head[0].in_features))
    graphs = quotient(graphs)
    shared = all(first.shares_bond_basis(model) for model in ensemble.models[1:])
    outputs: list[list[torch.Tensor]] = [[] for _ in ensemble.models]
    features: list[list[torch.Tensor]] = [[] for _ in ensemble.models]
    with torch.inference_mode():
        for start in range(0, len(graphs), batch_size):
            batch = graphs.batch(np.arange(start, min(start + batch_size, len(graphs)))).to(ensemble.device)
            basis = first.bond_basis(batch) if shared else None
            for out, feats, model in zip(outputs, features, ensemble.models, strict=True):
                feats.append(model.features(batch, basis))
                out.append(model.head_output(feats[-1]))
    return _kappa_and_features(ensemble, outputs, features)


def _kappa_and_features(
    ensemble: Ensemble, outputs: list[list[torch.Tensor]], features: list[list[torch.Tensor]]
) -> tuple[np.ndarray, np.ndarray]:
    """Every model's batched outputs as κ (W/mK, each inverted with its own scaler) and its features, stacked."""
    kappa = np.stack(
        [
            np.asarray(scaler.inverse(torch.cat(out).double().cpu().numpy()), dtype=np.float64)
            for out, scaler in zip(outputs, ensemble.scalers, strict=True)
        ]
    )
    return kappa, np.stack([torch.cat(feats).double().cpu().numpy() for feats in features])


def backbone_outputs(
    ensemble: Ensemble, structures: Sequence[Structure], batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ensemble_outputs` of an ensemble of a fine-tuned backbone: each batch of structures collated once
    into the backbone's own graphs and run through every model; the features are the backbone's representation."""
    first = ensemble.backbone
    if first is None:
        raise ValueError(f"{ensemble.name}: not a fine-tuned backbone's ensemble (use ensemble_outputs)")
    if not structures:
        dim = first.backbone.spec.representation_dim
        return np.zeros((len(ensemble), 0)), np.zeros((len(ensemble), 0, dim))
    outputs: list[list[torch.Tensor]] = [[] for _ in ensemble.models]
    features: list[list[torch.Tensor]] = [[] for _ in ensemble.models]
    with torch.no_grad():  # the backbones' graph builders need autograd enabled (no inference_mode)
        for start in range(0, len(structures), batch_size):
            batch = first.collate(structures[start : start + batch_size])
            for out, feats, model in zip(outputs, features, ensemble.models, strict=True):
                feats.append(model.features(batch))
                out.append(model.head_output(feats[-1]))
    return _kappa_and_features(ensemble, outputs, features)


def mean_std(kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std (``ddof=1``; NaN for one model) over the models (axis 0)."""
    mean = kappa.mean(axis=0)
    std = kappa.std(axis=0, ddof=1) if kappa.shape[0] > 1 else np.full(kappa.shape[1:], np.nan)
    return mean, std


def checked_record(structure: Structure, limits: Limits) -> dict[str, object]:
    """The structure record, or :class:`InvalidRow` when it cannot become a graph (see ``check_structure``)."""
    check_structure(structure, limits)
    return {"id": "", "dataset": "user", "target": math.nan, **structure_to_record(structure)}


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def predict_items(
    items: Sequence[Item],
    ensemble: Ensemble,
    batch_size: int = 64,
    min_distance: float = 0.5,
    progress: bool = False,
) -> pd.DataFrame:
    """The result table (``RESULT_COLUMNS``, one row per item, in order); bad items get an ``error``.

    Structures are checked, featurized and predicted in blocks of :data:`BLOCK_SIZE`; every model
    is applied to every block.
    """
    limits = Limits(min_distance=min_distance, cutoff=ensemble.cutoff)
    rows: list[dict[str, object]] = [
        {"input": item.input, "formula": None, "pred_mean_wmk": math.nan, "pred_std_wmk": math.nan,
         "n_models": 0, "unphysical": False, "unseen_elements": None, "error": item.error}
        for item in items
    ]
    bar = tqdm(total=len(items), desc="predict", unit="structure", disable=not progress, mininterval=0.5)
    with bar:
        for block in _blocks(len(items), BLOCK_SIZE):
            good, records, structures = [], [], []
            for index in range(block.start, block.stop):
                item = items[index]
                if item.structure is None:
                    continue
                rows[index]["formula"] = item.structure.composition.reduced_formula
                rows[index]["unseen_elements"] = unseen_elements(
                    (element.symbol for element in item.structure.composition.elements), ensemble.training_elements
                )
                try:
                    record = checked_record(item.structure, limits)
                    reason = ensemble.unsupported(item.structure)
                    if reason:
                        raise InvalidRow(reason)
                    records.append(record)
                    structures.append(item.structure)
                    good.append(index)
                except InvalidRow as error:
                    rows[index]["error"] = str(error)
                except Exception as error:  # noqa: BLE001 (one odd structure must not stop the others)
                    rows[index]["error"] = f"cannot build its graph ({type(error).__name__}: {error})"
            if records:
                if ensemble.backbone is None:
                    kappa, features = ensemble_outputs(ensemble, graph_set(records, limits.cutoff), batch_size)
                else:
                    kappa, features = backbone_outputs(ensemble, structures, batch_size)
                mean, std = mean_std(kappa)
                flags = unphysical(kappa).any(axis=0)
                trusted = trust_columns(ensemble.trust, kappa, features, [rows[i]["unseen_elements"] for i in good])
                for index, m, s, flag, extra in zip(good, mean, std, flags, trusted.to_dict("records"), strict=True):
                    rows[index].update(pred_mean_wmk=float(m), pred_std_wmk=float(s), n_models=len(ensemble),
                                       unphysical=bool(flag), **extra)
            bar.update(block.stop - block.start)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)
