"""The loss is MAPE on the κ scale (predictions inverted with the scaler inside the loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kappaflow.training.module import mape_kappa
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
