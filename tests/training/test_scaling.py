"""TargetScaler: y = (log10(κ + offset) - mean) / std of the training split; round trip; serialisable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kappaflow.training.scaling import TargetScaler


@pytest.mark.parametrize(("target", "offset"), [("log10_kappa_plus_1", 1.0), ("log10_kappa", 0.0)])
def test_fit_and_round_trip(target, offset):
    kappa = np.array([0.5, 1.0, 10.0, 100.0])
    scaler = TargetScaler.fit(kappa, target)
    assert scaler.offset == offset
    logs = np.log10(kappa + offset)
    assert scaler.mean == pytest.approx(logs.mean()) and scaler.std == pytest.approx(logs.std())
    y = scaler.transform(kappa)
    assert y.mean() == pytest.approx(0.0, abs=1e-12) and y.std() == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse(y), kappa, rtol=1e-12)
    yt = scaler.transform(torch.tensor(kappa))
    torch.testing.assert_close(scaler.inverse(yt), torch.tensor(kappa))


def test_dict_round_trip():
    scaler = TargetScaler(mean=0.3, std=1.7, offset=0.0)
    assert TargetScaler.from_dict(scaler.to_dict()) == scaler
    assert TargetScaler.from_dict({"mean": 0.3, "std": 1.7}).offset == 1.0, "older checkpoints: log10(κ + 1)"


def test_log10_kappa_target_never_predicts_kappa_at_or_below_zero():
    scaler = TargetScaler.fit(np.array([0.2, 3.0, 40.0]), "log10_kappa")
    outputs = torch.linspace(-30.0, 3.0, 200, dtype=torch.float64)
    assert (scaler.inverse(outputs) > 0).all()
    paper = TargetScaler.fit(np.array([0.2, 3.0, 40.0]), "log10_kappa_plus_1")
    assert (paper.inverse(outputs) <= 0).any(), "the paper's target reaches κ ≤ 0"


@pytest.mark.parametrize(
    ("kappa", "target"),
    [([1.0], "log10_kappa"), ([1.0, np.nan], "log10_kappa"), ([-2.0, 1.0], "log10_kappa_plus_1"),
     ([3.0, 3.0], "log10_kappa"), ([0.0, 1.0], "log10_kappa"), ([1.0, 2.0], "kappa")],
)
def test_bad_inputs(kappa, target):
    with pytest.raises(ValueError):
        TargetScaler.fit(np.array(kappa), target)
