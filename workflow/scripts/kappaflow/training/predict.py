"""Batched inference on a :class:`~kappaflow.graphs.GraphSet`: predictions and learned representations."""

from __future__ import annotations

import numpy as np
import torch

from kappaflow.graphs import GraphSet
from kappaflow.model import KappaNet
from kappaflow.quotient import quotient
from kappaflow.training.scaling import TargetScaler


@torch.inference_mode()
def predict_scaled_features(
    model: KappaNet, graphs: GraphSet, batch_size: int = 64, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised outputs ``(n,)`` and backbone features ``(n, d)`` of every graph, in order (float64).

    Batches of quotient graphs; one pass through the network gives both.
    """
    if len(graphs) == 0:
        return np.zeros(0), np.zeros((0, model.head[0].in_features))
    graphs = quotient(graphs)
    was_training = model.training
    model.eval().to(device)
    outputs, features = [], []
    for start in range(0, len(graphs), batch_size):
        idx = np.arange(start, min(start + batch_size, len(graphs)))
        feats = model.features(graphs.batch(idx).to(device))
        features.append(feats)
        outputs.append(model.head_output(feats))
    model.train(was_training)
    return torch.cat(outputs).double().cpu().numpy(), torch.cat(features).double().cpu().numpy()


def predict_scaled(
    model: KappaNet, graphs: GraphSet, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Standardised model outputs for every graph, in order (float64)."""
    return predict_scaled_features(model, graphs, batch_size, device)[0]


def predict_kappa_features(
    model: KappaNet, scaler: TargetScaler, graphs: GraphSet, batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """κ (W/mK) ``(n,)`` and backbone features ``(n, d)`` of every graph (``scaler``: the model's own)."""
    scaled, features = predict_scaled_features(model, graphs, batch_size, device)
    return np.asarray(scaler.inverse(scaled), dtype=np.float64), features


def predict_kappa(
    model: KappaNet,
    scaler: TargetScaler,
    graphs: GraphSet,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """κ (W/mK) for every graph; ``scaler`` must be the one stored with ``model``'s checkpoint."""
    return predict_kappa_features(model, scaler, graphs, batch_size, device)[0]
