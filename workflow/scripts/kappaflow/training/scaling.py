"""Target transform: y = (log10(κ + offset) - mean) / std with the training split's mean and std.

Two targets (config ``training.target``): the paper's ``log10_kappa_plus_1`` (offset 1: a prediction can
be as low as κ = -1 W/mK, unphysical) and ``log10_kappa`` (offset 0: every prediction is a positive κ).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

#: ``training.target`` name → offset added to κ before the log.
TARGET_OFFSETS: dict[str, float] = {"log10_kappa_plus_1": 1.0, "log10_kappa": 0.0}


@dataclass(frozen=True)
class TargetScaler:
    """Standardises ``log10(κ + offset)``; fitted on one training split and stored with its checkpoint."""

    mean: float
    std: float
    offset: float = 1.0  # checkpoints written before the target was an option used log10(κ + 1)

    @classmethod
    def fit(cls, kappa: np.ndarray, target: str) -> TargetScaler:
        """Mean and (population) std of ``log10(κ + offset)`` over ``kappa`` for ``target``."""
        if target not in TARGET_OFFSETS:
            raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_OFFSETS)}")
        offset = TARGET_OFFSETS[target]
        kappa = np.asarray(kappa, dtype=np.float64)
        if kappa.size < 2:
            raise ValueError("TargetScaler.fit needs at least two values")
        if not np.isfinite(kappa).all() or (kappa < 0).any() or (offset == 0 and (kappa == 0).any()):
            raise ValueError(f"TargetScaler.fit: κ values must be finite, ≥ 0, and > 0 for target {target}"
                             if offset == 0 else "TargetScaler.fit: κ values must be finite and ≥ 0")
        y = np.log10(kappa + offset)
        std = float(y.std())
        if not std > 0.0:
            raise ValueError("TargetScaler.fit: all training targets are equal (std 0)")
        return cls(mean=float(y.mean()), std=std, offset=offset)

    def log_kappa(self, y: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Standardised target → ``log10(κ + offset)``."""
        return y * self.std + self.mean

    def transform(self, kappa: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """κ (W/mK) → standardised target."""
        shifted = kappa + self.offset
        log = torch.log10(shifted) if isinstance(kappa, torch.Tensor) else np.log10(shifted)
        return (log - self.mean) / self.std

    def inverse(self, y: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Standardised target → κ (W/mK)."""
        log = self.log_kappa(y)
        power = torch.pow(10.0, log) if isinstance(y, torch.Tensor) else np.power(10.0, log)
        return power - self.offset

    def to_dict(self) -> dict[str, float]:
        """``{"mean", "std", "offset"}`` (JSON- and checkpoint-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetScaler:
        """Inverse of :meth:`to_dict`."""
        return cls(mean=float(data["mean"]), std=float(data["std"]), offset=float(data.get("offset", 1.0)))
