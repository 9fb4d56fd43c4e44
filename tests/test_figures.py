from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kappaflow import figures

STEPS = ("I", "II", "III")
SETS = ("Dataset1", "Dataset2", "MIX", "AFLOW")


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for step in STEPS:
        for train_on in SETS[:3]:
            for run in (1, 2):
                for test_on in SETS:
                    true = rng.uniform(0.5, 100, 6)
                    for i, t in enumerate(true):
                        rows.append({"step": step, "train_on": train_on, "run": run, "test_on": test_on,
                                     "id": f"{test_on}{i}", "formula": "NaCl", "kappa_true": t,
                                     "kappa_pred": t * rng.uniform(0.5, 1.5), "status": "ok"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table(predictions: pd.DataFrame) -> pd.DataFrame:
    from kappaflow.evaluation import mape_table, per_run_mape

    return mape_table(per_run_mape(predictions))


def _check(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_loss_curves(tmp_path: Path) -> None:
    epochs = np.arange(5)
    history = pd.concat(
        [pd.DataFrame({"step": s, "train_on": t, "run": r, "epoch": epochs, "train_loss": 1 / (epochs + 1),
                       "val_loss": 1.1 / (epochs + 1)}) for s in STEPS for t in SETS[:3] for r in (1, 2)]
    )
    _check(figures.loss_curves(history, tmp_path / "loss_curves.png"))


def test_parity(tmp_path: Path, predictions: pd.DataFrame) -> None:
    _check(figures.parity(predictions, tmp_path / "parity.png"))


def test_parity_without_runs(tmp_path: Path, predictions: pd.DataFrame) -> None:
    _check(figures.parity(predictions.assign(status="collapsed"), tmp_path / "parity_empty"))


def test_heatmap_and_bars(tmp_path: Path, table: pd.DataFrame) -> None:
    _check(figures.mape_heatmap(table, tmp_path / "heatmap.png"))
    _check(figures.step_bars(table, tmp_path / "bars.png"))


def test_agl_vs_abinitio(tmp_path: Path) -> None:
    matches = pd.DataFrame({"hq_dataset": ["dataset1", "dataset1", "dataset2"], "kappa_agl_wmk": [1.0, 20.0, 5.0],
                            "kappa_hq_wmk": [2.0, 30.0, 4.0]})
    _check(figures.agl_vs_abinitio(matches, tmp_path / "agl.png"))
    _check(figures.agl_vs_abinitio(matches.iloc[:0], tmp_path / "agl_empty.png"))


def test_parity_marks_unphysical_predictions_instead_of_clipping(
    tmp_path: Path, predictions: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = []
    save = figures.save
    monkeypatch.setattr(figures, "save", lambda fig, path: shown.append(fig) or save(fig, path))
    negative = predictions.copy()
    rows = (negative.step == "II") & (negative.train_on == "Dataset1") & (negative.test_on == "Dataset1")
    negative.loc[rows[rows].index[:3], "kappa_pred"] = [-0.5, 0.0, -0.9]
    _check(figures.parity(negative, tmp_path / "parity_negative.png"))
    legends = [text.get_text() for ax in shown[0].axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    assert legends == ["κ_pred ≤ 0 W/mK: 3 (at the floor)"]
