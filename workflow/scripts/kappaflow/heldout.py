"""Held-out evaluation: K-fold outer cross-validation with an inner validation split, one small ensemble per fold.

For fold ``f`` of set ``name`` the outer test part is fold ``f`` (the assignment depends only on the ids,
``K`` and ``heldout.seed``); each ensemble member (seed ``s`` of ``heldout.seeds``) splits the remaining
materials into an inner training part (what it fits) and an inner validation part (what picks its
checkpoint) with its own seed. The outer test part is seen by no member, so its metrics are an honest
estimate, unlike the paper's protocol, which selects the epoch on the split it reports. MIX folds
Dataset1 and Dataset2 separately and concatenates, as the paper splits MIX, so MIX fold ``f`` =
Dataset1 fold ``f`` ∪ Dataset2 fold ``f``.

:func:`fold_ensemble` joins a fold's members: the ensemble's mean κ, the spread of log10 κ over members
(what :mod:`kappaflow.calibration` calibrates) and each test material's distance to the fold's training
materials (:mod:`kappaflow.domain`, what the applicability domain's threshold is found from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kappaflow.baseline import RF_STEP, FitPredict, forest, read_materials, timed_fit_predict
from kappaflow.domain import DOMAIN_COLUMNS, build_reference, nearest, stacked_features
from kappaflow.graphs import GraphSet
from kappaflow.protocol import FAILED_STATUSES, HELDOUT_SETS, OK, SET_SOURCES, STEP_INIT, STEPS, unphysical
from kappaflow.training.splits import SplitError, split_indices
from kappaflow.trust import log_spread

@dataclass(frozen=True)
class FoldIndices:
    """Row indices (into one dataset key's table) of the three disjoint parts of one outer fold."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def labels(self, n: int) -> np.ndarray:
        """``train``, ``val`` or ``test`` for each of the ``n`` rows."""
        labels = np.full(n, "train", dtype=object)
        labels[self.val] = "val"
        labels[self.test] = "test"
        return labels


def fold_of(ids: Sequence[str] | np.ndarray, k: int, seed: int) -> np.ndarray:
    """Outer fold (0..k-1) of every row; depends only on the set of ids, ``k`` and ``seed``."""
    ids = np.asarray(ids, dtype=object)
    if k < 2:
        raise SplitError(f"held-out protocol needs at least 2 outer folds, got {k}")
    if len(ids) < k:
        raise SplitError(f"cannot make {k} outer folds from {len(ids)} materials")
    if len(set(ids.tolist())) != len(ids):
        raise SplitError("ids are not unique, cannot fold reproducibly")
    order = np.argsort(ids.astype(str), kind="stable")
    shuffled = order[np.random.default_rng([seed, k]).permutation(len(ids))]
    folds = np.empty(len(ids), dtype=np.int64)
    for fold, rows in enumerate(np.array_split(shuffled, k)):
        folds[rows] = fold
    return folds


def fold_indices(
    ids: Sequence[str] | np.ndarray, fold: int, k: int, fold_seed: int, run_seed: int, val_fraction: float,
    name: str = "dataset",
) -> FoldIndices:
    """Inner training, inner validation and outer test rows of ``fold`` (sorted, pairwise disjoint).

    ``fold_seed`` assigns the outer folds; ``run_seed`` splits the rest into inner training and validation.
    """
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in [0, {k}), got {fold}")
    ids = np.asarray(ids, dtype=object)
    folds = fold_of(ids, k, fold_seed)
    test = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    inner_train, inner_val = split_indices(ids[rest], run_seed, val_fraction, name=f"{name} fold {fold} (inner)")
    return FoldIndices(train=rest[inner_train], val=rest[inner_val], test=test)


def set_fold_indices(
    name: str, ids: Mapping[str, np.ndarray], fold: int, k: int, fold_seed: int, run_seed: int, val_fraction: float
) -> dict[str, FoldIndices]:
    """Fold indices per dataset key behind set ``name`` (``ids``: dataset key → ids)."""
    if name not in HELDOUT_SETS:
        raise ValueError(f"held-out protocol supports {HELDOUT_SETS}, not {name!r}")
    return {
        key: fold_indices(ids[key], fold, k, fold_seed, run_seed, val_fraction, name=f"{name} ({key})")
        for key in SET_SOURCES[name]
    }


def fold_graphs(
    name: str, graphs: Mapping[str, GraphSet], fold: int, k: int, fold_seed: int, run_seed: int, val_fraction: float
) -> tuple[GraphSet, GraphSet, GraphSet]:
    """Inner training, inner validation and outer test graphs of ``fold`` of set ``name``."""
    ids = {key: graphs[key].ids for key in SET_SOURCES[name]}
    parts = set_fold_indices(name, ids, fold, k, fold_seed, run_seed, val_fraction)
    return tuple(  # type: ignore[return-value]
        GraphSet.concat([graphs[key].subset(getattr(parts[key], part)) for key in SET_SOURCES[name]])
        for part in ("train", "val", "test")
    )


def fold_frame(
    step: str, train_on: str, fold: int, seed: int, test: GraphSet | pd.DataFrame, kappa_pred: np.ndarray, status: str
) -> pd.DataFrame:
    """Held-out predictions of one run of one fold:
    ``step, train_on, fold, seed, id, formula, kappa_true, kappa_pred, status``."""
    if isinstance(test, GraphSet):
        ids, formulas, targets = test.ids, test.formulas, test.targets
    else:
        ids, formulas, targets = test["id"].to_numpy(), test["formula"].to_numpy(), test["target"].to_numpy()
    return pd.DataFrame(
        {
            "step": step, "train_on": train_on, "fold": int(fold), "seed": int(seed), "id": np.asarray(ids, dtype=object),
            "formula": np.asarray(formulas, dtype=object), "kappa_true": np.asarray(targets, dtype=float),
            "kappa_pred": np.asarray(kappa_pred, dtype=float), "status": status,
        }
    )


def heldout_predictions(
    materials: Mapping[str, pd.DataFrame],
    train_sets: Sequence[str],
    k: int,
    seed: int,
    val_fraction: float,
    fit_predict: FitPredict,
    step: str,
) -> pd.DataFrame:
    """Held-out predictions of a regressor without a checkpoint to select, on every fold of every set.

    It fits on the inner training and validation parts together (everything but the outer test fold);
    one model per fold (seed ``seed``, which also assigns the folds). Rows in the :func:`fold_frame`
    layout with ``status = "ok"`` and ``fit_s``, the wall time of the fold's model.
    """
    frames = []
    for name in train_sets:
        ids = {key: materials[key]["id"].to_numpy(dtype=object) for key in SET_SOURCES[name]}
        for fold in range(k):
            parts = set_fold_indices(name, ids, fold, k, seed, seed, val_fraction)
            fit = pd.concat(
                [materials[key].iloc[np.concatenate([p.train, p.val])] for key, p in parts.items()], ignore_index=True
            )
            test = pd.concat([materials[key].iloc[p.test] for key, p in parts.items()], ignore_index=True)
            kappa, seconds = timed_fit_predict(fit_predict, fit, test, seed)
            frames.append(fold_frame(step, name, fold, seed, test, kappa, OK).assign(fit_s=seconds))
    return pd.concat(frames, ignore_index=True)


def write_baseline_heldout(
    graph_paths: Mapping[str, str | Path], train_sets: Sequence[str], k: int, seed: int, val_fraction: float,
    output: str | Path, n_estimators: int, min_samples_leaf: int, n_jobs: int,
) -> None:
    """The forest under :func:`heldout_predictions` (step ``RF``) on the graph files' materials, written to
    ``output`` (parquet, the :func:`fold_frame` layout, without ``fit_s``)."""
    materials = {key: read_materials(path) for key, path in graph_paths.items()}
    regressor = forest(n_estimators, min_samples_leaf, n_jobs)
    frame = heldout_predictions(materials, train_sets, k, seed, val_fraction, regressor, RF_STEP)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    frame.drop(columns="fit_s").to_parquet(output, index=False)


def write_subset(source: str | Path, target: str | Path, ids: Sequence[str]) -> None:
    """Copy the rows of graph parquet ``source`` whose id is in ``ids`` to ``target`` (metadata kept)."""
    table = pq.read_table(source)
    keep = pc.is_in(table.column("id"), value_set=pa.array(list(map(str, ids)), type=pa.string()))
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(keep), target)


def train_fold(
    step: str,
    train_on: str,
    fold: int,
    k: int,
    fold_seed: int,
    seed: int,
    graph_paths: Mapping[str, str | Path],
    pretrained_dir: str | Path,
    work_dir: str | Path,
    output: str | Path,
    features_output: str | Path,
    stage1_checkpoint: str | Path | None = None,
    **run_options: object,
) -> pd.DataFrame:
    """Train one member (seed ``seed``) of the (step, set, fold) ensemble and predict its outer test fold.

    The runner gets graph files holding only the non-test materials of the fold, so its own
    train/validation split (``split_indices`` of those ids with ``seed``) is exactly the inner split
    of :func:`fold_indices`; the outer test fold never enters training or checkpoint selection.
    ``run_options`` go to :class:`kappaflow.training.runner.RunSpec` (epochs, batch_size, lr, ...).
    Writes the fold's predictions to ``output``, the member's features of every material of the set to
    ``features_output`` (:func:`kappaflow.domain.features_frame`), and returns the predictions.
    """
    from kappaflow.domain import features_frame
    from kappaflow.training.checkpoint import load_trained
    from kappaflow.training.data import read_graphs
    from kappaflow.training.predict import predict_kappa_features
    from kappaflow.training.runner import RunSpec, train_run

    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {STEPS}")
    if step == "III" and not stage1_checkpoint:
        raise ValueError("step III needs the stage-1 checkpoint")
    work_dir = Path(work_dir)
    keys = SET_SOURCES[train_on]
    graphs = read_graphs({key: graph_paths[key] for key in keys})
    val_fraction = float(run_options["val_fraction"])  # type: ignore[arg-type]
    parts = set_fold_indices(train_on, {key: graphs[key].ids for key in keys}, fold, k, fold_seed, seed, val_fraction)
    fit_paths = {}
    for key in keys:
        fit_ids = graphs[key].ids[np.concatenate([parts[key].train, parts[key].val])]
        fit_paths[key] = str(work_dir / "graphs" / f"{key}.parquet")
        write_subset(graph_paths[key], fit_paths[key], fit_ids)
    spec = RunSpec(
        step=step, train_on=train_on, seed=seed, out_dir=str(work_dir / "model"), graph_paths=fit_paths,
        pretrained_dir=str(pretrained_dir), init=STEP_INIT[step],
        init_checkpoint=str(stage1_checkpoint) if step == "III" else None, **run_options,
    )
    result = train_run(spec)
    model, scaler = load_trained(Path(spec.out_dir) / "best.ckpt")
    everything = GraphSet.concat([graphs[key] for key in keys])
    kappa, features = predict_kappa_features(model, scaler, everything)
    part = np.concatenate([parts[key].labels(len(graphs[key])) for key in keys])
    test = part == "test"
    frame = fold_frame(step, train_on, fold, seed, everything.subset(np.flatnonzero(test)), kappa[test], result.status)
    for path in (output, features_output):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output, index=False)
    features_frame(everything.ids, everything.formulas, everything.targets, part, features).to_parquet(features_output)
    return frame


#: Columns of a fold ensemble's table (one row per outer-test material).
ENSEMBLE_COLUMNS = ["step", "train_on", "fold", "id", "formula", "kappa_true", "kappa_pred", "log_std", "n_models",
                    "unphysical", *DOMAIN_COLUMNS, "status"]


def fold_domain(member_features: Sequence[pd.DataFrame], ids: Sequence[str]) -> pd.DataFrame:
    """:data:`~kappaflow.domain.DOMAIN_COLUMNS` of a fold's test materials ``ids`` (in that order): the closest
    material its members fitted on (their training and validation parts), in the members' joint representation.

    ``member_features``: each usable member's feature table (:func:`kappaflow.domain.features_frame`, with the
    fold's test materials as part ``test``); the members' rows may come in different orders.
    """
    order = member_features[0]["id"]
    frames = [frame.set_index("id").loc[order].reset_index() for frame in member_features]
    fit = (frames[0]["part"] != "test").to_numpy()
    stacked = stacked_features(frames)
    reference = build_reference(order[fit], frames[0]["formula"][fit], frames[0]["kappa_wmk"][fit], stacked[:, fit])
    return nearest(reference, stacked[:, pd.Index(order).get_indexer(ids)])


def fold_ensemble(run_predictions: Sequence[str | Path], run_features: Sequence[str | Path], output: str | Path) -> pd.DataFrame:
    """Join one fold's members (their predictions and features, in the same seed order) into its ensemble table.

    Members whose status is collapsed or diverged are left out, as ``kappaflow predict`` leaves them out;
    a fold without any usable member keeps its rows with ``kappa_pred`` NaN and the members' status.
    """
    runs = [pd.read_parquet(path) for path in run_predictions]
    ids = runs[0]["id"].tolist()
    if any(run["id"].tolist() != ids for run in runs):
        raise ValueError(f"the members of {Path(output).parent} predicted different test materials")
    usable = [i for i, run in enumerate(runs) if run["status"].iloc[0] not in FAILED_STATUSES] if ids else []
    first = runs[0]
    table = first[["step", "train_on", "fold", "id", "formula", "kappa_true"]].copy()
    if usable:
        kappa = np.stack([runs[i]["kappa_pred"].to_numpy(dtype=np.float64) for i in usable])
        table = table.assign(kappa_pred=kappa.mean(axis=0), log_std=log_spread(kappa), n_models=len(usable),
                             unphysical=unphysical(kappa).any(axis=0))
        table[DOMAIN_COLUMNS] = fold_domain([pd.read_parquet(run_features[i]) for i in usable], ids).to_numpy()
        table["status"] = OK
    else:
        table = table.assign(kappa_pred=np.nan, log_std=np.nan, n_models=0, unphysical=False,
                             **{column: None for column in DOMAIN_COLUMNS},
                             status=runs[0]["status"].iloc[0] if ids else OK)
    table = table[ENSEMBLE_COLUMNS].astype({"nearest_distance": float, "nearest_kappa_wmk": float})
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)
    return table
