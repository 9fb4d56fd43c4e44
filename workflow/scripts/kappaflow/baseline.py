"""Composition-only baseline: a random forest on element-property statistics.

Each material becomes the composition-weighted mean, min, max and std of pymatgen ``Element``
properties of its elements, plus its number of elements. The forest regresses log10 κ, so
its errors are relative, like the MAPE it is judged by. It sees no structure: the gap between it and
the graph network is what the crystal graph adds.

:func:`paper_protocol_predictions` runs any regressor (a :data:`FitPredict`, such as :func:`forest` or the
frozen-representation trees of :mod:`kappaflow.frozen`) under the paper's protocol, on the network's splits.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pymatgen.core import Composition, Element
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline

from kappaflow.protocol import OK, SET_SOURCES
from kappaflow.training.splits import split_indices

#: Element properties (pymatgen ``Element`` attributes) the statistics are taken over.
ELEMENT_PROPERTIES: tuple[str, ...] = (
    "Z",
    "atomic_mass",
    "X",
    "row",
    "group",
    "atomic_radius",
    "average_ionic_radius",
    "molar_volume",
    "melting_point",
    "mendeleev_no",
    "ionization_energy",
    "electron_affinity",
    "density_of_solid",
    "thermal_conductivity",
)
STATISTICS: tuple[str, ...] = ("mean", "min", "max", "std")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{stat}_{prop}" for prop in ELEMENT_PROPERTIES for stat in STATISTICS),
    "n_elements",
)
#: Step name of the forest's predictions.
RF_STEP = "RF"
#: A protocol's regressor: fitted on ``train``, κ (W/mK) of ``test``'s rows; the int seeds it.
FitPredict = Callable[[pd.DataFrame, pd.DataFrame, int], np.ndarray]


@cache
def element_vector(symbol: str) -> np.ndarray:
    """The ``ELEMENT_PROPERTIES`` of one element as floats (NaN where pymatgen has no value)."""
    element = Element(symbol)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ELEMENT_PROPERTIES:
            try:
                value = float(getattr(element, name))
            except (TypeError, ValueError, AttributeError):
                value = np.nan
            values.append(value)
    return np.asarray(values, dtype=float)


def composition_features(formula: str) -> np.ndarray:
    """Composition-weighted mean/min/max/std of every element property, and the number of elements."""
    composition = Composition(formula).fractional_composition
    symbols = [element.symbol for element in composition.elements]
    weights = np.asarray([composition[symbol] for symbol in symbols], dtype=float)
    table = np.stack([element_vector(symbol) for symbol in symbols])  # (n_elements, n_properties)
    features = []
    for column in table.T:
        known = np.isfinite(column)
        if not known.any():
            features += [np.nan] * len(STATISTICS)
            continue
        w = weights[known] / weights[known].sum()
        values = column[known]
        mean = float(np.sum(w * values))
        std = float(np.sqrt(np.sum(w * (values - mean) ** 2)))
        features += [mean, float(values.min()), float(values.max()), std]
    features.append(float(len(symbols)))
    return np.asarray(features, dtype=float)


def featurize(formulas: Sequence[str]) -> pd.DataFrame:
    """Feature matrix (rows: formulas, columns: ``FEATURE_NAMES``)."""
    rows = [composition_features(formula) for formula in formulas]
    return pd.DataFrame(np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES))), columns=FEATURE_NAMES)


def make_model(seed: int, n_estimators: int, min_samples_leaf: int, n_jobs: int) -> Pipeline:
    """Median imputation followed by a random forest."""
    forest = RandomForestRegressor(
        n_estimators=n_estimators, min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=n_jobs
    )
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), forest)


def fit_predict(
    train_formulas: Sequence[str],
    train_kappa: Sequence[float] | np.ndarray,
    test_formulas: Sequence[str],
    seed: int,
    n_estimators: int,
    min_samples_leaf: int,
    n_jobs: int,
) -> np.ndarray:
    """Fit on the training materials (κ in W/mK) and predict κ (W/mK) of the test materials."""
    kappa = np.asarray(train_kappa, dtype=float)
    if len(kappa) < 2:
        raise ValueError(f"the baseline needs at least 2 training materials, got {len(kappa)}")
    if (kappa <= 0).any() or not np.isfinite(kappa).all():
        raise ValueError("the baseline needs finite, strictly positive training κ")
    model = make_model(seed, n_estimators, min_samples_leaf, n_jobs)
    model.fit(featurize(train_formulas), np.log10(kappa))
    if len(test_formulas) == 0:
        return np.zeros(0)
    return 10.0 ** model.predict(featurize(test_formulas))


def forest(n_estimators: int, min_samples_leaf: int, n_jobs: int) -> FitPredict:
    """The composition forest as a protocol regressor (reads ``formula`` and ``target``)."""

    def fit_predict_forest(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> np.ndarray:
        return fit_predict(train["formula"], train["target"], test["formula"], seed,
                           n_estimators, min_samples_leaf, n_jobs)

    return fit_predict_forest


def timed_fit_predict(
    fit_predict: FitPredict, train: pd.DataFrame, test: pd.DataFrame, seed: int
) -> tuple[np.ndarray, float]:
    """κ (W/mK) of ``test``'s rows from one model fitted on ``train``; wall time (s) of fit and prediction."""
    start = time.perf_counter()
    kappa = np.asarray(fit_predict(train, test, seed), dtype=float)
    seconds = time.perf_counter() - start
    if kappa.shape != (len(test),):
        raise ValueError(f"the regressor returned {kappa.shape} predictions for {len(test)} test rows")
    return kappa, seconds


def read_materials(path: str | Path) -> pd.DataFrame:
    """``id, formula, target`` of a graph (or structure) parquet, without the graph columns."""
    return pq.read_table(path, columns=["id", "formula", "target"]).to_pandas()


def _set_part(materials: Mapping[str, pd.DataFrame], name: str, seed: int, val_fraction: float, part: int) -> pd.DataFrame:
    """Training (``part=0``) or validation (``part=1``) rows of set ``name``, split like the graph network's."""
    frames = []
    for key in SET_SOURCES[name]:
        table = materials[key]
        indices = split_indices(table["id"].to_numpy(dtype=object), seed, val_fraction, name=f"{name} ({key})")
        frames.append(table.iloc[indices[part]])
    return pd.concat(frames, ignore_index=True)


def paper_protocol_predictions(
    materials: Mapping[str, pd.DataFrame],
    train_sets: Sequence[str],
    test_sets: Sequence[str],
    seeds: Sequence[int],
    val_fraction: float,
    fit_predict: FitPredict,
    step: str,
) -> pd.DataFrame:
    """A regressor under the paper's protocol: per seed and training set, one model fitted on the training
    split (the same split the graph network uses) predicts the validation split of every test set.

    ``materials`` maps dataset keys (``aflow``, ``dataset1``, ``dataset2``) to ``id, formula, target`` and
    whatever else ``fit_predict`` reads. Returns rows in the ``predictions.parquet`` layout with ``step``,
    ``status = "ok"`` and ``fit_s``, the wall time of the row's model (shared by its test sets).
    """
    frames = []
    for seed in seeds:
        test = pd.concat(
            [_set_part(materials, name, seed, val_fraction, 1).assign(test_on=name) for name in test_sets],
            ignore_index=True,
        )
        for train_on in train_sets:
            train = _set_part(materials, train_on, seed, val_fraction, 0)
            kappa, seconds = timed_fit_predict(fit_predict, train, test, seed)
            frames.append(
                pd.DataFrame(
                    {
                        "step": step, "train_on": train_on, "run": int(seed),
                        "test_on": test["test_on"].to_numpy(), "id": test["id"].to_numpy(),
                        "formula": test["formula"].to_numpy(),
                        "kappa_true": test["target"].to_numpy(float), "kappa_pred": kappa, "status": OK,
                        "fit_s": seconds,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def write_paper_protocol(
    graph_paths: Mapping[str, str | Path],
    train_sets: Sequence[str],
    test_sets: Sequence[str],
    seeds: Sequence[int],
    val_fraction: float,
    output: str | Path,
    n_estimators: int,
    min_samples_leaf: int,
    n_jobs: int,
) -> None:
    """The forest under :func:`paper_protocol_predictions` (step ``RF``) on the graph files' materials,
    written to ``output`` (parquet, the ``predictions.parquet`` layout, without ``fit_s``)."""
    materials = {key: read_materials(path) for key, path in graph_paths.items()}
    regressor = forest(n_estimators, min_samples_leaf, n_jobs)
    frame = paper_protocol_predictions(
        materials, train_sets, test_sets, seeds, val_fraction, regressor, RF_STEP
    )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    frame.drop(columns="fit_s").to_parquet(output, index=False)
