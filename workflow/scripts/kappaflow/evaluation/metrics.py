"""Error metrics on lattice thermal conductivity κ (W/mK).

MAPE is a fraction (0.82 means 82 %), as ``sklearn.metrics.mean_absolute_percentage_error``
returns it and as the ParAIsite paper reports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ArrayLike = Sequence[float] | np.ndarray | pd.Series
#: Smallest κ (W/mK) a prediction counts as in log-scale metrics, far below any measured lattice κ.
KAPPA_FLOOR = 1.0e-3


def _pair(kappa_true: ArrayLike, kappa_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated float arrays of equal, non-zero length."""
    true = np.asarray(kappa_true, dtype=float)
    pred = np.asarray(kappa_pred, dtype=float)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(f"κ true and predicted must be 1-d of equal length, got {true.shape} and {pred.shape}")
    if true.size == 0:
        raise ValueError("cannot compute a metric on zero materials")
    return true, pred


def mape(kappa_true: ArrayLike, kappa_pred: ArrayLike) -> float:
    """Mean absolute percentage error on κ, as a fraction: mean(|pred - true| / |true|).

    NaN predictions make the result NaN (a diverged run must not look good).
    """
    true, pred = _pair(kappa_true, kappa_pred)
    if (true <= 0).any():
        raise ValueError("MAPE needs strictly positive true κ")
    return float(np.mean(np.abs(pred - true) / true))


def mae_log10(kappa_true: ArrayLike, kappa_pred: ArrayLike) -> float:
    """Mean absolute error of log10 κ (decades).

    Predictions below :data:`KAPPA_FLOOR` (the network's ``10**y - 1`` can go negative) are scored as
    ``KAPPA_FLOOR``, a large but finite penalty; NaN predictions give NaN.
    """
    true, pred = _pair(kappa_true, kappa_pred)
    if (true <= 0).any():
        raise ValueError("log10 κ needs strictly positive true κ")
    return float(np.mean(np.abs(np.log10(np.maximum(pred, KAPPA_FLOOR)) - np.log10(true))))


def spearman(kappa_true: ArrayLike, kappa_pred: ArrayLike) -> float:
    """Spearman rank correlation; NaN for fewer than 2 materials or constant predictions."""
    true, pred = _pair(kappa_true, kappa_pred)
    if true.size < 2 or np.isnan(pred).any() or np.ptp(pred) == 0 or np.ptp(true) == 0:
        return float("nan")
    return float(spearmanr(true, pred).statistic)


def metric_frame(predictions: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """MAPE, MAE of log10 κ, Spearman ρ and the number of materials per group of ``by``."""
    rows = []
    for key, group in predictions.groupby(list(by), sort=True, dropna=False):
        true, pred = group["kappa_true"].to_numpy(), group["kappa_pred"].to_numpy()
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "mape": mape(true, pred),
                "mae_log10": mae_log10(true, pred),
                "spearman": spearman(true, pred),
                "n_materials": len(group),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "mape", "mae_log10", "spearman", "n_materials"])
