"""The losses: MAPE on the κ scale (predictions inverted with the scaler inside the loss), L1 on the log scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kappaflow.training.module import l1_log, mape_kappa
from kappaflow.training.scaling import TargetScaler


def test_loss_is_mape_on_kappa_hand_computed():
    scaler = TargetScaler(mean=0.5, std=2.0)
    # predictions chosen so that the model's κ are 1.0 and 9.0 exactly
    pred_scaled = torch.tensor([(np.log10(2.0) - 0.5) / 2.0, (1.0 - 0.5) / 2.0], dtype=torch.float64)
    kappa_true = torch.tensor([2.0, 10.0], dtype=torch.float64)
    # |1 - 2| / 2 = 0.5 ; |9 - 10| / 10 = 0.1 ; mean = 0.3
    assert mape_kappa(pred_scaled, kappa_true, scaler).item() == pytest.approx(0.3, rel=1e-12)


def test_loss_depends_on_scaler():
    pred = torch.tensor([0.1, -0.2, 0.4])
    kappa = torch.tensor([1.0, 3.0, 5.0])
    a = mape_kappa(pred, kappa, TargetScaler(0.5, 0.3))
    b = mape_kappa(pred, kappa, TargetScaler(1.0, 0.6))
    assert not torch.isclose(a, b)


def test_l1_log_is_the_mean_absolute_error_of_log10_kappa():
    scaler = TargetScaler(mean=0.5, std=2.0, offset=0.0)
    kappa_pred = torch.tensor([1.0, 100.0], dtype=torch.float64)
    kappa_true = torch.tensor([10.0, 10.0], dtype=torch.float64)
    assert l1_log(scaler.transform(kappa_pred), kappa_true, scaler).item() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("offset", [1.0, 0.0])
def test_l1_log_has_a_gradient_at_the_floor_and_no_overflow(offset):
    """Where MAPE on κ is stuck (κ_pred = -1 for log10(κ + 1): 10^y - 1 flat) or overflows (huge y), L1 is not."""
    scaler = TargetScaler(mean=0.3, std=0.4, offset=offset)
    kappa = torch.tensor([2.0, 5.0], dtype=torch.float64)
    for value in (-200.0, 2000.0):
        pred = torch.full((2,), value, dtype=torch.float64, requires_grad=True)
        loss = l1_log(pred, kappa, scaler)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
        assert (pred.grad.abs() > 0.1).all(), "the gradient does not vanish"
    stuck = torch.full((2,), -200.0, dtype=torch.float64, requires_grad=True)
    mape_kappa(stuck, kappa, TargetScaler(mean=0.3, std=0.4)).backward()
    assert (stuck.grad.abs() < 1e-30).all(), "MAPE on κ has no gradient at the κ = -1 floor"
    huge = torch.full((2,), 2000.0, dtype=torch.float32)
    assert not torch.isfinite(mape_kappa(huge, kappa.float(), TargetScaler(mean=0.3, std=0.4))), "MAPE overflows"
