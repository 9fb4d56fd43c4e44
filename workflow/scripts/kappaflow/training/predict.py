"""Batched inference on a :class:`~kappaflow.graphs.GraphSet`."""

from __future__ import annotations

import numpy as np
import torch

from kappaflow.graphs import GraphSet
from kappaflow.model import KappaNet
from kappaflow.quotient import quotient
from kappaflow.training.scaling import TargetScaler


@torch.inference_mode()
def predict_scaled(
    model: KappaNet, graphs: GraphSet, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Standardised model outputs for every graph, in order (float64); batches of quotient graphs."""
    if len(graphs) == 0:
        return np.zeros(0)
    graphs = quotient(graphs)
    was_training = model.training
    model.eval().to(device)
    outputs = []
    for start in range(0, len(graphs), batch_size):
        idx = np.arange(start, min(start + batch_size, len(graphs)))
        outputs.append(model(graphs.batch(idx).to(device)).reshape(-1))
    model.train(was_training)
    return torch.cat(outputs).double().cpu().numpy()


def predict_kappa(
    model: KappaNet,
    scaler: TargetScaler,
    graphs: GraphSet,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """κ (W/mK) for every graph; ``scaler`` must be the one stored with ``model``'s checkpoint."""
    return np.asarray(scaler.inverse(predict_scaled(model, graphs, batch_size, device)), dtype=np.float64)
