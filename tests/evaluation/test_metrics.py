from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from kappaflow.evaluation.metrics import mae_log10, mape, metric_frame, spearman


def test_mape_by_hand() -> None:
    # |1.5-1|/1 = 0.5, |1-2|/2 = 0.5, |4-4|/4 = 0 → 1/3
    assert mape([1.0, 2.0, 4.0], [1.5, 1.0, 4.0]) == pytest.approx(1.0 / 3.0)


def test_mape_matches_sklearn() -> None:
    from sklearn.metrics import mean_absolute_percentage_error

    rng = np.random.default_rng(0)
    true, pred = rng.uniform(0.1, 50, 20), rng.uniform(0.1, 50, 20)
    assert mape(true, pred) == pytest.approx(mean_absolute_percentage_error(true, pred))


def test_mape_nan_prediction_is_nan() -> None:
    assert math.isnan(mape([1.0, 2.0], [1.0, float("nan")]))


def test_mape_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        mape([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        mape([], [])


def test_mae_log10_by_hand() -> None:
    # log10 errors: |log10(10) - log10(1)| = 1, |log10(100) - log10(100)| = 0 → 0.5
    assert mae_log10([1.0, 100.0], [10.0, 100.0]) == pytest.approx(0.5)
    # a non-positive prediction counts as κ = 1e-3: |log10(1e-3) - log10(1)| = 3 → mean 1.5
    assert mae_log10([1.0, 1.0], [1.0, -1.0]) == pytest.approx(1.5)
    assert math.isnan(mae_log10([1.0, 2.0], [1.0, float("nan")]))


def test_spearman_by_hand() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1,2,3) vs (1,3,2): d² = 0+1+1 = 2, ρ = 1 - 6·2/(3·8) = 0.5
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_metric_frame_groups() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"], "kappa_true": [1.0, 2.0, 1.0, 10.0],
                          "kappa_pred": [2.0, 2.0, 1.0, 1.0]})
    out = metric_frame(frame, by=["g"]).set_index("g")
    assert out.loc["a", "mape"] == pytest.approx(0.5)
    assert out.loc["b", "mape"] == pytest.approx(0.45)
    assert out.loc["b", "mae_log10"] == pytest.approx(0.5)
    assert list(out["n_materials"]) == [2, 2]
