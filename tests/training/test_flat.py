"""FlatParameters: one Adam step over a flat buffer equals per-parameter Adam; gradients stay attached."""

from __future__ import annotations

import math

import pytest
import torch
from kappaflow.training.flat import FlatParameters
from torch import nn


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Softplus(), nn.Linear(7, 3), nn.Linear(3, 1))


def _train(net: nn.Module, flat: bool, steps: int = 5) -> None:
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    if flat:
        params = FlatParameters.of(net.parameters())
        optimizer = torch.optim.Adam([params.param], lr=1e-2, fused=True)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    for _ in range(steps):
        params.zero_grad() if flat else optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        optimizer.step()


def test_flat_adam_matches_per_parameter_adam():
    per_param, flat = _net(0), _net(0)
    _train(per_param, flat=False)
    _train(flat, flat=True)
    for a, b in zip(per_param.state_dict().values(), flat.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(_net(0)[0].weight, flat[0].weight)  # it did train


def test_views_keep_values_and_state_dict():
    net = _net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = FlatParameters.of(net.parameters())
    assert params.param.numel() == sum(v.numel() for v in before.values())
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, before[key])
    with torch.no_grad():
        params.param.zero_()
    assert all(float(p.abs().sum()) == 0.0 for p in net.parameters())  # module parameters are views
    net.load_state_dict(before)
    torch.testing.assert_close(params.param, torch.cat([v.reshape(-1) for v in before.values()]))


def test_detached_gradients_are_reported():
    net = _net(2)
    params = FlatParameters.of(net.parameters())
    net(torch.randn(2, 5)).sum().backward()
    params.check()
    assert float(params.param.grad.abs().sum()) > 0
    net.zero_grad(set_to_none=True)
    with pytest.raises(RuntimeError, match="detached from the flat buffer"):
        params.check()


def test_mixed_devices_or_nothing_are_refused():
    with pytest.raises(ValueError, match="no trainable"):
        FlatParameters.of([])
    with pytest.raises(ValueError, match="one device and dtype"):
        FlatParameters.of([nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))])


def test_run_follows_the_cosine_schedule(tiny_spec):
    """Manual optimisation steps the schedule once per epoch: the lr logged for epoch e is the cosine value."""
    import pandas as pd
    from kappaflow.training.runner import train_run

    spec = tiny_spec(epochs=4, lr=1e-3, lr_decay_epochs=3, lr_min_factor=0.1)
    metrics = pd.read_csv(train_run(spec).out_dir / "metrics.csv")
    expected = [1e-4 + (1e-3 - 1e-4) * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(4)]
    assert metrics.lr.tolist() == pytest.approx(expected, rel=1e-6)
