"""A tiny trained step-III ensemble (3 runs, 1 epoch, small MEGNet) built once per test session.

Imported by the predict, CLI and scan tests; the ensemble is built with the real training runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from kappaflow.graphs import featurize_record, structure_to_record, write_graph_table
from _schema import run_options
from kappaflow.training.runner import RunSpec, train_run
from pymatgen.core import Structure

MIRROR_DIR = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()
PRETRAINED_DIR = MIRROR_DIR / "pretrained" / "MEGNet-MP-2018.6.1-Eform"
#: A small MEGNet so each run takes a second or two (shared by the training tests).
TINY_INIT_ARGS = {
    "dim_node_embedding": 8,
    "dim_edge_embedding": 16,
    "hidden_layer_sizes_input": [16, 8],
    "hidden_layer_sizes_conv": [16, 16, 8],
    "hidden_layer_sizes_output": [8, 4],
    "nblocks": 2,
}
SEEDS = (1, 2, 3)
TRAIN_SETS = ("Dataset1", "Dataset2", "MIX")
_CACHE: dict[str, Path] = {}


def _dataset1_graphs(folder: Path, n: int = 12) -> str:
    labels = pd.read_csv(MIRROR_DIR / "hq" / "dataset1.csv")
    records = []
    for mp_id, kappa in zip(labels.mp_id, labels.ltc_wmk):
        path = MIRROR_DIR / "mp" / "structures" / f"{mp_id}.json"
        if path.is_file():
            structure = Structure.from_dict(json.loads(path.read_text()))
            record = {"id": mp_id, "dataset": "dataset1", "target": float(kappa), **structure_to_record(structure)}
            records.append(featurize_record(record, 4.0))
        if len(records) == n:
            break
    path = folder / "graphs" / "dataset1.parquet"
    write_graph_table(records, path, cutoff=4.0)
    return str(path)


def tiny_models(root: Path) -> Path:
    """``<root>/results/models`` with ``stepIII/{Dataset1,Dataset2,MIX}/run{1,2,3}/best.ckpt`` (cached).

    Every train set gets the same three tiny runs (trained on Dataset1): enough for ensemble logic.
    """
    if "models" in _CACHE:
        return _CACHE["models"]
    graphs = _dataset1_graphs(root)
    models = root / "results" / "models"
    for seed in SEEDS:
        out = models / "stepIII" / "Dataset1" / f"run{seed}"
        spec = RunSpec(
            step="III", train_on="Dataset1", seed=seed, out_dir=str(out), graph_paths={"dataset1": graphs},
            pretrained_dir=str(PRETRAINED_DIR), init="random", init_args=dict(TINY_INIT_ARGS),
            **run_options(epochs=1, batch_size=4, head_hidden=[8]),
        )
        train_run(spec, progress_bar=False)
    for train_set in TRAIN_SETS[1:]:
        for seed in SEEDS:
            source = models / "stepIII" / "Dataset1" / f"run{seed}"
            target = models / "stepIII" / train_set / f"run{seed}"
            target.mkdir(parents=True)
            for name in ("best.ckpt", "run.json", "features.parquet"):
                (target / name).write_bytes((source / name).read_bytes())
    _CACHE["models"] = models
    return models


def write_trust_files(folder: Path, calibration: dict | None) -> None:
    """``domain.parquet`` and ``trust.json`` of the ensemble in ``folder``, as rule ``ensemble_trust`` writes them
    from its runs' files; ``calibration``: the held-out record of the ensemble, or None."""
    from kappaflow.trust import write_ensemble_trust

    runs = sorted(path.parent for path in folder.glob("run*/best.ckpt"))
    info = json.loads((runs[0] / "run.json").read_text())
    heldout = None if calibration is None else {f"step{info['step']}/{info['train_on']}": calibration}
    write_ensemble_trust([run / "run.json" for run in runs], [run / "features.parquet" for run in runs], heldout,
                         "" if heldout else "no held-out folds (test ensemble)", folder / "domain.parquet",
                         folder / "trust.json")


def tiny_trusted_models(root: Path, calibration: dict | None) -> Path:
    """A copy of :func:`tiny_models` under ``root`` whose ensembles have their trust files."""
    import shutil

    models = root / "results" / "models"
    shutil.copytree(tiny_models(root / "plain"), models)
    for folder in sorted(models.glob("step*/*")):
        write_trust_files(folder, calibration)
    return models


def tiny_exported_model(ensemble: Path, out: Path, structures: list[Structure]) -> Path:
    """``ensemble`` (with its trust files) exported as a shippable model (2 members) checking ``structures``."""
    from kappaflow.shipped import export_model, model_card

    for index, structure in enumerate(structures):
        structure.properties.setdefault("id", f"check{index}")
    config = {
        "training": {"target": "log10_kappa_plus_1", "loss": "mape_kappa", "lr": 1e-3, "batch_size": 4,
                     "epochs": 1, "stage1_epochs": 1, "head_hidden": [8]},
        "heldout": {"folds": 2, "seeds": [1, 2]},
    }
    card = model_card("stepIII-MIX", "III", "MIX", config, sorted(ensemble.glob("run*/run.json")),
                      ensemble / "trust.json", None, None, "no held-out folds (test ensemble)")
    export_model(sorted(ensemble.glob("run*/best.ckpt")), [ensemble / "domain.parquet", ensemble / "trust.json"],
                 out, structures, card, members=2)
    return out
