"""Target transform: y = (log10(κ + 1) - mean) / std with the training split's mean and std."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class TargetScaler:
    """Standardises ``log10(κ + 1)``; fitted on one training split and stored with its checkpoint."""

    mean: float
    std: float

    @classmethod
    def fit(cls, kappa: np.ndarray) -> TargetScaler:
        """Mean and (population) std of ``log10(κ + 1)`` over ``kappa``."""
        kappa = np.asarray(kappa, dtype=np.float64)
        if kappa.size < 2:
            raise ValueError("TargetScaler.fit needs at least two values")
        if not np.isfinite(kappa).all() or (kappa < 0).any():
            raise ValueError("TargetScaler.fit: κ values must be finite and non-negative")
        y = np.log10(kappa + 1.0)
        std = float(y.std())
        if not std > 0.0:
            raise ValueError("TargetScaler.fit: all training targets are equal (std 0)")
        return cls(mean=float(y.mean()), std=std)

    def transform(self, kappa: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """κ (W/mK) → standardised target."""
        log = torch.log10(kappa + 1.0) if isinstance(kappa, torch.Tensor) else np.log10(kappa + 1.0)
        return (log - self.mean) / self.std

    def inverse(self, y: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Standardised target → κ (W/mK)."""
        log = y * self.std + self.mean
        return torch.pow(10.0, log) - 1.0 if isinstance(y, torch.Tensor) else np.power(10.0, log) - 1.0

    def to_dict(self) -> dict[str, float]:
        """``{"mean", "std"}`` (JSON- and checkpoint-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetScaler:
        """Inverse of :meth:`to_dict`."""
        return cls(mean=float(data["mean"]), std=float(data["std"]))
