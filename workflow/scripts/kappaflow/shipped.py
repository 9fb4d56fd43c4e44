"""The model shipped inside the package: export a trained ensemble with its card, find it, describe it.

An exported model is a folder that :func:`kappaflow.predict.load_ensemble` reads like any ensemble:

- ``run{seed}/best.ckpt`` and ``run.json`` of its members (weights stored in half precision when that moves
  no predicted κ of a training material by more than :data:`HALF_PRECISION_TOLERANCE`, relative);
- ``domain.parquet`` and ``trust.json`` (its applicability domain and calibration, :mod:`kappaflow.trust`);
- ``card.json``: what it was trained on, how, its held-out error, the commit and configuration that made it;
- ``check/*.json`` structures and ``check.csv``, the predictions the model made of them when it was exported,
  so that an installation can show it reproduces them (:func:`check_predictions`).

The package ships one under ``kappaflow/models/default`` (:data:`kappaflow.protocol.DEFAULT_MODEL_DIR`), the
``kappaflow predict`` default; the workflow's ``ship_model`` rule writes ``results/shipped/model``
(:data:`kappaflow.protocol.SHIPPED_MODEL`), which one documented command copies there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kappaflow.inputs import Item, read_inputs
from kappaflow.protocol import FINE_TUNED_BACKBONE
from kappaflow.predict import ModelError, load_ensemble, predict_items, usable_checkpoints
from kappaflow.training.checkpoint import read_checkpoint
from kappaflow.trust import DOMAIN_FILE, TRUST_FILE

CARD_FILE, CHECK_FILE, CHECK_DIR = "card.json", "check.csv", "check"
#: Largest relative change of a predicted κ that half-precision storage may cause.
HALF_PRECISION_TOLERANCE = 1e-3
#: Columns of ``check.csv`` that :func:`check_predictions` compares.
CHECK_COLUMNS = ["input", "formula", "pred_mean_wmk", "pred_std_wmk", "kappa_low_wmk", "kappa_high_wmk", "in_domain"]


def check_structures(data_tables: Sequence[str | Path], per_table: int | None = None) -> list[Any]:
    """The first ``per_table`` materials (by id; None: all) of each validated data table, as structures
    named by id."""
    from kappaflow.graphs import record_to_structure

    structures = []
    for path in data_tables:
        table = pd.read_parquet(path).sort_values("id")
        table = table if per_table is None else table.head(per_table)
        for record in table.to_dict("records"):
            structure = record_to_structure(record)
            structure.properties["id"] = str(record["id"])
            structures.append(structure)
    return structures


def _write_members(checkpoints: Sequence[Path], out_dir: Path, half: bool) -> None:
    """Copy each member's checkpoint (floating weights cast to float16 when ``half``) and run.json."""
    for path in checkpoints:
        checkpoint = read_checkpoint(path)
        if half:
            checkpoint["state_dict"] = {
                key: value.half() if value.is_floating_point() else value
                for key, value in checkpoint["state_dict"].items()
            }
        member = out_dir / path.parent.name
        member.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, member / "best.ckpt")
        if (path.parent / "run.json").is_file():
            shutil.copyfile(path.parent / "run.json", member / "run.json")


def _predict_check(model_dir: Path) -> pd.DataFrame:
    """The exported model's predictions of its check structures (``input`` relative to the model folder)."""
    files = sorted((model_dir / CHECK_DIR).glob("*.json"))
    table = predict_items(read_inputs([str(path) for path in files]), load_ensemble(model_dir))
    table["input"] = [f"{CHECK_DIR}/{path.name}" for path in files]
    if table["error"].notna().any():
        bad = table.loc[table["error"].notna(), ["input", "error"]].to_dict("records")
        raise ValueError(f"{model_dir}: check structures the model cannot predict: {bad}")
    return table[CHECK_COLUMNS]


def _predict_structures(model_dir: Path, structures: Sequence[Any]) -> pd.DataFrame:
    """The model's predictions of structures named by ``structure.properties["id"]``."""
    items = [Item(str(structure.properties["id"]), structure) for structure in structures]
    return predict_items(items, load_ensemble(model_dir))


def largest_relative_change(before: pd.DataFrame, after: pd.DataFrame, column: str = "pred_mean_wmk") -> float:
    """Largest |after/before − 1| of one column of two check tables (by default the predicted κ)."""
    a, b = before[column].to_numpy(float), after[column].to_numpy(float)
    return float(np.nanmax(np.abs(b / a - 1.0)))


def export_model(
    checkpoints: Sequence[str | Path],
    trust_files: Sequence[str | Path],
    out_dir: str | Path,
    check_structures: Sequence[Any],
    card: dict[str, Any],
    members: int,
    half_precision: bool = True,
    precision_structures: Sequence[Any] = (),
) -> dict[str, Any]:
    """Write the first ``members`` usable ``checkpoints`` (an ensemble's ``run*/best.ckpt``, by seed) and the
    ensemble's ``trust_files`` (its domain.parquet and trust.json) as a shippable model.

    ``check_structures`` (pymatgen structures, named by ``structure.properties["id"]``) are predicted by the
    exported model and recorded in ``check.csv``. Weights are stored in half precision only when that changes
    no predicted κ (ensemble mean) by more than :data:`HALF_PRECISION_TOLERANCE` (relative), over the check
    structures and ``precision_structures`` (e.g. every training material); ``card.json`` records the
    precision kept and the change measured. Returns the card written.

    Raises:
        ModelError: fewer usable runs than ``members``, or ``trust_files`` are not the two trust files.
    """
    out_dir = Path(out_dir)
    usable = usable_checkpoints(checkpoints)
    if len(usable) < members:
        raise ModelError(f"{len(usable)} usable runs of {len(checkpoints)}, fewer than the {members} to ship")
    names = sorted(Path(path).name for path in trust_files)
    if names != sorted([DOMAIN_FILE, TRUST_FILE]):
        raise ModelError(f"expected the ensemble's {DOMAIN_FILE} and {TRUST_FILE}, got {names}")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / CHECK_DIR).mkdir(parents=True)
    for structure in check_structures:
        (out_dir / CHECK_DIR / f"{structure.properties['id']}.json").write_text(structure.to_json())
    for path in map(Path, trust_files):
        shutil.copyfile(path, out_dir / path.name)
    chosen = usable[:members]
    _write_members(chosen, out_dir, half=False)
    # each structure once (the check structures are usually training materials too)
    assessed = list({str(s.properties["id"]): s for s in [*check_structures, *precision_structures]}.values())
    change = spread_change = 0.0
    if half_precision:
        before = _predict_structures(out_dir, assessed)
        _write_members(chosen, out_dir, half=True)
        after = _predict_structures(out_dir, assessed)
        change = largest_relative_change(before, after)
        spread_change = largest_relative_change(before, after, "pred_std_wmk")
        if change > HALF_PRECISION_TOLERANCE:
            _write_members(chosen, out_dir, half=False)
            half_precision = False
    _predict_check(out_dir).to_csv(out_dir / CHECK_FILE, index=False)
    written = {
        **card,
        "members": [path.parent.name for path in chosen],
        "weights": {
            "precision": "float16" if half_precision else "float32",
            "largest_relative_change_from_float32": change,
            "largest_relative_change_of_spread": spread_change,
            "structures_compared": len(assessed),
            "tolerance": HALF_PRECISION_TOLERANCE,
        },
        "size_bytes": sum(path.stat().st_size for path in out_dir.rglob("*") if path.is_file()),
    }
    (out_dir / CARD_FILE).write_text(json.dumps(written, indent=2, sort_keys=False) + "\n")
    return written


STEP_NAMES = {"I": "from scratch", "II": "pretrained MEGNet, one fine-tuning",
              "III": "pretrained MEGNet, fine-tuned on AFLOW AGL κL (stage 1), then on the training set"}
TRAINING_DATA = {
    "Dataset1": "Dataset1: ab-initio κL of binary compounds",
    "Dataset2": "Dataset2: ab-initio κL of half-Heusler compounds",
    "MIX": "MIX: Dataset1 (binary compounds) and Dataset2 (half-Heuslers), ab-initio κL",
    "AFLOW": "AFLOW AGL κL (Debye-Grüneisen model, low quality)",
}


def _heldout_rows(heldout_table: str | Path | None, step: str, train_on: str) -> list[dict[str, Any]]:
    if heldout_table is None:
        return []
    table = pd.read_csv(heldout_table)
    rows = table[(table["step"] == step) & (table["train_on"] == train_on)]
    keep = ["test_on", "mape", "mae_log10", "spearman", "mape_run_mean", "mape_run_std", "n_materials", "n_folds",
            "n_runs"]
    return json.loads(rows[keep].to_json(orient="records"))


def _calibration_text(calibration: str | Path | None, trust: dict[str, Any], step: str, train_on: str) -> str:
    if trust.get("scale") is None:
        return f"not calibrated: {trust.get('calibration_note', '')}"
    text = f"ensemble spread × {trust['scale']:.2f} (fitted on held-out folds)"
    if calibration is not None:
        table = pd.read_csv(calibration)
        row = table[(table["step"] == step) & (table["train_on"] == train_on)]
        if len(row):
            row = row.iloc[0]
            text += (f"; held-out coverage of ±1σ {row['coverage_1sigma']:.2f} (nominal 0.68), "
                     f"±2σ {row['coverage_2sigma']:.2f} (nominal 0.95)")
    return text


def model_card(
    name: str, step: str, train_on: str, config: dict[str, Any], run_jsons: Sequence[str | Path],
    trust_json: str | Path, heldout_table: str | Path | None, calibration: str | Path | None,
    heldout_note: str,
) -> dict[str, Any]:
    """The card of an ensemble about to be shipped, from the files the workflow wrote and its configuration."""
    from kappaflow.provenance import provenance

    runs = [json.loads(Path(path).read_text()) for path in run_jsons]
    sizes = sorted({run["n_train"] + run["n_val"] for run in runs})
    training = config["training"]
    data = f"{TRAINING_DATA[train_on]}, {'/'.join(map(str, sizes))} materials (each member: 80/20 train/validation)"
    if step == "III":
        data += f"; stage 1: {TRAINING_DATA['AFLOW']}"
    epochs = f"{training['epochs']} epochs" + (f" (stage 1: {training['stage1_epochs']})" if step == "III" else "")
    trust = json.loads(Path(trust_json).read_text())
    rows = _heldout_rows(heldout_table, step, train_on)
    threshold = trust.get("domain_threshold")
    return {
        "name": name,
        "predicts": "lattice thermal conductivity κL at 300 K in W/mK: the members' mean, their spread and a "
                    "calibrated ±1σ interval, the nearest training material and whether the structure is in domain",
        "training": {"step": step, "train_on": train_on, "data": data,
                     "trained_by": sorted({str(run.get("kappaflow", {}).get("commit")) for run in runs})},
        "protocol": {
            "summary": f"step {step} ({STEP_NAMES[step]}); target {training['target']}, loss {training['loss']}, "
                       f"Adam lr {training['lr']}, batch {training['batch_size']}, {epochs}, "
                       f"best epoch on the member's validation split",
            "backbone": f"{FINE_TUNED_BACKBONE} with an MLP head {'-'.join(map(str, training['head_hidden']))}",
        },
        "heldout": {
            "protocol": f"{config['heldout']['folds']}-fold outer cross-validation, "
                        f"{len(config['heldout']['seeds'])} members per fold, pooled over folds",
            "rows": rows,
            "note": heldout_note if not rows else "",
        },
        "trust": {
            "calibration": _calibration_text(calibration, trust, step, train_on),
            "domain": (f"nearest-neighbour distance ≤ {threshold:.2f} training spacings and no unseen element "
                       f"({trust.get('domain_note', '')})" if threshold is not None
                       else f"unknown: {trust.get('domain_note', '')}"),
        },
        "made_by": {key: value for key, value in provenance().items() if key != "package_path"},
        "configuration": config,
    }


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """The ``card.json`` of an exported model.

    Raises:
        ModelError: the folder holds no card (not an exported model, or no model shipped in this installation).
    """
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelError(f"{path} not found: {model_dir} is not an exported kappaflow model")
    return json.loads(path.read_text())


def check_predictions(model_dir: str | Path, rtol: float = 1e-4) -> pd.DataFrame:
    """Predict the model's check structures again and compare with ``check.csv``.

    Returns the recorded and new predictions side by side. Raises ``AssertionError`` naming the structure
    when a prediction moved by more than ``rtol`` (relative) or ``in_domain`` changed.
    """
    model_dir = Path(model_dir)
    recorded = pd.read_csv(model_dir / CHECK_FILE)
    now = _predict_check(model_dir)
    merged = recorded.merge(now, on="input", suffixes=("_recorded", "_now"), validate="one_to_one")
    if len(merged) != len(recorded):
        raise AssertionError(f"{model_dir}: check structures changed ({len(recorded)} recorded, {len(merged)} now)")
    for column in ("pred_mean_wmk", "kappa_low_wmk", "kappa_high_wmk"):
        old, new = merged[f"{column}_recorded"].to_numpy(float), merged[f"{column}_now"].to_numpy(float)
        moved = ~np.isclose(new, old, rtol=rtol, atol=0.0)
        if moved.any():
            row = merged.loc[moved].iloc[0]
            raise AssertionError(f"{model_dir}: {row['input']} {column} was {row[f'{column}_recorded']}, "
                                 f"now {row[f'{column}_now']}")
    flipped = merged["in_domain_recorded"].astype(bool) != merged["in_domain_now"].astype(bool)
    if flipped.any():
        raise AssertionError(f"{model_dir}: in_domain changed for {merged.loc[flipped, 'input'].tolist()}")
    return merged


def describe_card(card: dict[str, Any]) -> str:
    """The card as text for ``kappaflow models``."""
    training, protocol = card["training"], card["protocol"]
    lines = [
        f"{card['name']}: step {training['step']} ensemble trained on {training['train_on']} "
        f"({len(card['members'])} members: {', '.join(card['members'])})",
        f"  predicts: {card['predicts']}",
        f"  training data: {training['data']}",
        f"  protocol: {protocol['summary']}",
        f"  backbone: {protocol['backbone']}",
    ]
    heldout = card.get("heldout")
    if heldout and heldout.get("rows"):
        lines.append(f"  held-out error ({heldout['protocol']}):")
        lines += [
            f"    on {row['test_on']}: ensemble MAPE {row['mape']:.3f}, MAE log10 κ {row['mae_log10']:.3f}, "
            f"Spearman {row['spearman']:.3f} ({row['n_materials']} materials); per run MAPE "
            f"{row['mape_run_mean']:.3f} ({row['mape_run_std']:.3f}) over {row['n_runs']} runs"
            for row in heldout["rows"]
        ]
    else:
        lines.append(f"  held-out error: none ({(heldout or {}).get('note', 'no held-out folds')})")
    trust = card.get("trust", {})
    lines.append(f"  uncertainty: {trust.get('calibration', 'not calibrated')}")
    lines.append(f"  applicability domain: {trust.get('domain', 'unknown')}")
    weights = card["weights"]
    lines.append(f"  weights: {weights['precision']} (largest relative change of a predicted κ from float32 "
                 f"{weights['largest_relative_change_from_float32']:.1e} over {weights.get('structures_compared', 0)} "
                 f"structures), {card['size_bytes'] / 1e6:.1f} MB")
    made = card["made_by"]
    lines.append(f"  made by: kappaflow {made['version']} commit {made['commit'] or 'unknown'}"
                 f"{' (uncommitted changes)' if made.get('dirty') else ''}; configuration in card.json")
    return "\n".join(lines)
