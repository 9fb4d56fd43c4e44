"""Evaluate one trained run: its best model's predictions on the validation split of every test set.

A job of its own (rule ``evaluate_run``), apart from training, so that adding a test set or changing a
test set's data re-evaluates the existing models and never retrains them. The split of each test set is
the one the run's own seed and ``val_fraction`` (read from its ``run.json``) give, as in the paper.
Each prediction carries its domain columns measured against the run's own training split, in the run's
own representation (its ``features.parquet``): ``unseen_elements`` and the ``nearest_*`` training material.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from kappaflow.domain import build_reference, nearest, stacked_features, unseen_elements
from kappaflow.evaluation.runs import PREDICTION_COLUMNS
from kappaflow.protocol import sources_of, unphysical
from kappaflow.training.checkpoint import read_checkpoint, trained_model, training_elements
from kappaflow.training.data import read_graphs, split_set
from kappaflow.training.predict import predict_kappa_features


def evaluate_run(
    run_json: str | Path,
    checkpoint: str | Path,
    features: str | Path,
    graph_paths: Mapping[str, str],
    test_sets: Sequence[str],
    output: str | Path,
    batch_size: int,
    device: str = "cpu",
) -> pd.DataFrame:
    """Predict the validation split of every test set with the run's best model; write and return it.

    ``features``: the run's ``features.parquet`` (its representation of its training set, by part).
    """
    meta = json.loads(Path(run_json).read_text())
    seed, val_fraction = int(meta["seed"]), float(meta["val_fraction"])
    stored = read_checkpoint(checkpoint)
    model, scaler = trained_model(stored)
    learned = training_elements(stored)
    trained = pd.read_parquet(features).query("part == 'train'")
    reference = build_reference(trained["id"], trained["formula"], trained["kappa_wmk"], stacked_features([trained]))
    graphs = read_graphs({key: graph_paths[key] for key in sources_of(test_sets)})
    frames = []
    for test_on in test_sets:
        val = split_set(test_on, graphs, seed, val_fraction).val
        kappa_pred, val_features = predict_kappa_features(model, scaler, val, batch_size, device)
        frame = pd.DataFrame(
            {
                "step": meta["step"],
                "train_on": meta["train_on"],
                "run": seed,
                "test_on": test_on,
                "id": val.ids.astype(str),
                "formula": val.formulas.astype(str),
                "kappa_true": val.targets,
                "kappa_pred": kappa_pred,
                "unphysical": unphysical(kappa_pred),
                "unseen_elements": [unseen_elements(found, learned) for found in val.elements()],
            }
        )
        frames.append(pd.concat([frame, nearest(reference, val_features[None])], axis=1))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)
    return table
