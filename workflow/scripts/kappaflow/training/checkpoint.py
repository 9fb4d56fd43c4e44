"""Reading trained checkpoints: the model together with the scaler it was trained with."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from kappaflow.model import KappaNet, kappanet_from_config
from kappaflow.training.module import CKPT_KEY
from kappaflow.training.scaling import TargetScaler

#: Checkpoint keys kept in the exported ``best.ckpt`` (no optimizer or loop state).
EXPORT_KEYS = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", CKPT_KEY)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a kappaflow checkpoint (tensors and plain types only), with a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, OSError, RuntimeError, pickle.UnpicklingError) as error:  # empty, truncated or foreign
        reason = "empty file" if path.stat().st_size == 0 else f"{type(error).__name__}: {error}"
        raise ValueError(f"{path}: not a readable kappaflow checkpoint ({reason})") from None
    if CKPT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a kappaflow checkpoint (no {CKPT_KEY!r} entry)")
    return checkpoint


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The KappaNet weights of a Lightning checkpoint (``model.`` prefix removed)."""
    return {
        key.removeprefix("model."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("model.")
    }


def training_elements(checkpoint: dict[str, Any]) -> list[str] | None:
    """Elements of the κ-labelled materials the network learned from (stage 1 included); None when the
    checkpoint predates this record."""
    return checkpoint[CKPT_KEY].get("training_elements")


def load_trained(path: str | Path) -> tuple[KappaNet, TargetScaler]:
    """The trained :class:`KappaNet` (eval mode, CPU) and the scaler stored in *its* checkpoint.

    Predictions of this model must be inverted with this scaler and no other.
    """
    return trained_model(read_checkpoint(path))


def trained_model(checkpoint: dict[str, Any]) -> tuple[KappaNet, TargetScaler]:
    """:func:`load_trained` of a checkpoint already read."""
    meta = checkpoint[CKPT_KEY]
    model = kappanet_from_config(meta["model_config"])
    model.load_state_dict(model_state(checkpoint), strict=True)
    return model.eval(), TargetScaler.from_dict(meta["scaler"])


def export_checkpoint(source: str | Path, target: str | Path) -> None:
    """Write ``source`` without optimizer/loop state to ``target`` (what ``best.ckpt`` holds)."""
    checkpoint = read_checkpoint(source)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: checkpoint[key] for key in EXPORT_KEYS if key in checkpoint}, target)
