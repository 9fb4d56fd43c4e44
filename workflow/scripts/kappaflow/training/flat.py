"""All trainable parameters and their gradients in two flat buffers, so Adam updates them in one call.

Adam's per-step cost on CPU at batch 8 is mostly Python and dispatch per parameter tensor (112 in
KappaNet), not arithmetic: over one flat tensor the step is ≈0.25 ms shorter (≈4 % of a training
step). Each module parameter stays a leaf ``nn.Parameter`` (state dicts, checkpoints and
``load_state_dict`` are unchanged) whose storage is a slice of :attr:`FlatParameters.param`, and
whose ``.grad`` is the matching slice of the flat gradient: backward accumulates into it in place.
Gradients must therefore be zeroed with :meth:`FlatParameters.zero_grad`, never set to ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FlatParameters:
    """One flat parameter (give it to the optimizer) viewed by the module parameters ``views``."""

    param: nn.Parameter
    views: tuple[nn.Parameter, ...]

    @classmethod
    def of(cls, params: Iterable[nn.Parameter]) -> FlatParameters:
        """Move ``params`` (one device and dtype) into a new flat buffer; their values are kept."""
        views = tuple(params)
        if not views:
            raise ValueError("no trainable parameters to flatten")
        if len({(p.device, p.dtype) for p in views}) > 1:
            raise ValueError("parameters to flatten must share one device and dtype")
        flat = torch.cat([p.detach().reshape(-1) for p in views])
        grad = torch.zeros_like(flat)
        start = 0
        for p in views:
            end = start + p.numel()
            p.data = flat[start:end].view_as(p)
            p.grad = grad[start:end].view_as(p)
            start = end
        param = nn.Parameter(flat)
        param.grad = grad
        return cls(param, views)

    def zero_grad(self) -> None:
        """Zero every gradient in place (the views stay attached)."""
        self.param.grad.zero_()

    def check(self) -> None:
        """Raise ``RuntimeError`` if some parameter's gradient no longer lives in the flat buffer.

        That happens when something calls ``zero_grad(set_to_none=True)`` on the module: its
        gradients would then never reach the optimizer.
        """
        base = self.param.grad.untyped_storage().data_ptr()
        for p in self.views:
            if p.grad is None or p.grad.untyped_storage().data_ptr() != base:
                raise RuntimeError(
                    "a parameter's gradient was detached from the flat buffer (zero_grad(set_to_none=True)?)"
                )
