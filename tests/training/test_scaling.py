"""TargetScaler: y = (log10(κ + 1) - mean) / std of the training split; round trip; serialisable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kappaflow.training.scaling import TargetScaler


def test_fit_and_round_trip():
    kappa = np.array([0.5, 1.0, 10.0, 100.0])
    scaler = TargetScaler.fit(kappa)
    logs = np.log10(kappa + 1)
    assert scaler.mean == pytest.approx(logs.mean()) and scaler.std == pytest.approx(logs.std())
    y = scaler.transform(kappa)
    assert y.mean() == pytest.approx(0.0, abs=1e-12) and y.std() == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse(y), kappa, rtol=1e-12)
    yt = scaler.transform(torch.tensor(kappa))
    torch.testing.assert_close(scaler.inverse(yt), torch.tensor(kappa))


def test_dict_round_trip():
    scaler = TargetScaler(mean=0.3, std=1.7)
    assert TargetScaler.from_dict(scaler.to_dict()) == scaler


@pytest.mark.parametrize("kappa", [[1.0], [1.0, np.nan], [-2.0, 1.0], [3.0, 3.0]])
def test_bad_inputs(kappa):
    with pytest.raises(ValueError):
        TargetScaler.fit(np.array(kappa))
