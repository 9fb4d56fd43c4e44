from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kappaflow.evaluation import collect_runs, mape_markdown, mape_table, per_run_mape, vs_published
from kappaflow.evaluation.runs import effective_status
from kappaflow.evaluation.tables import heldout_markdown, heldout_table, vs_published_markdown


@pytest.fixture
def table(synthetic_runs) -> pd.DataFrame:
    _, predictions = collect_runs(synthetic_runs)
    return mape_table(per_run_mape(predictions))


def test_collect_runs(synthetic_runs) -> None:
    runs, predictions = collect_runs(synthetic_runs)
    assert len(runs) == 5
    assert runs.set_index(["step", "train_on", "run"]).loc[("I", "Dataset1", 3), "status"] == "collapsed"
    assert len(predictions) == 5 * 4 * 4
    assert set(predictions["status"]) == {"ok", "collapsed"}


def test_runs_frame_says_when_a_run_collapsed(tmp_path, make_run) -> None:
    paths = [make_run(tmp_path, "I", "Dataset1", 1, "ok", 0.1),
             make_run(tmp_path, "I", "Dataset1", 2, "collapsed", 0.3, collapsed_at_epoch=7)]
    runs, predictions = collect_runs(paths)
    assert runs["collapsed_at_epoch"].tolist()[1] == 7 and pd.isna(runs["collapsed_at_epoch"].tolist()[0])
    row = mape_table(per_run_mape(predictions)).set_index(["step", "train_on", "test_on"]).loc[("I", "Dataset1", "Dataset1")]
    assert row["n_runs"] == 1 and row["failed_runs"] == "2:collapsed"


def test_mean_std_excludes_failed(table: pd.DataFrame) -> None:
    row = table.set_index(["step", "train_on", "test_on"]).loc[("I", "Dataset1", "Dataset1")]
    assert row["mape_mean"] == pytest.approx(0.2)  # seeds 1 and 2: 0.1, 0.3; collapsed seed 3 left out
    assert row["mape_std"] == pytest.approx(0.1)  # population std (ddof=0) of 0.1, 0.3
    assert row["n_runs"] == 2
    assert row["n_failed"] == 1
    assert row["failed_runs"] == "3:collapsed"
    mix = table.set_index(["step", "train_on", "test_on"]).loc[("II", "MIX", "AFLOW")]
    assert mix["mape_mean"] == pytest.approx(0.2) and mix["mape_std"] == pytest.approx(0.0)
    assert mix["n_failed"] == 0


def test_table_columns_and_order(table: pd.DataFrame) -> None:
    reference_columns = ["step", "train_on", "test_on", "mape_mean", "mape_std"]
    assert list(table.columns[:6]) == [*reference_columns, "n_runs"]
    assert list(table["test_on"][:4]) == ["Dataset1", "Dataset2", "MIX", "AFLOW"]
    assert list(table["step"].unique()) == ["I", "II"]


def test_markdown_layout(table: pd.DataFrame) -> None:
    text = mape_markdown(table)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == "| step | train on | Dataset1 | Dataset2 | MIX | AFLOW | runs |"
    assert len(lines) == 2 + 2  # header, rule, two (step, train set) rows
    assert "0.20 (0.10) †" in lines[2]
    assert "2 (+1 failed)" in lines[2]
    assert "ddof=0" in text
    assert "3:collapsed" in text  # footnote names the failed run


def test_effective_status_safety_net() -> None:
    assert effective_status("ok", np.array([1.0, 2.0])) == "ok"
    assert effective_status("ok", np.array([2.0, 2.0])) == "collapsed"
    assert effective_status("ok", np.array([1.0, np.nan])) == "diverged"
    assert effective_status("diverged", np.array([1.0, 2.0])) == "diverged"


def test_all_failed_cell_is_dash(tmp_path, make_run) -> None:
    paths = [make_run(tmp_path, "III", "Dataset2", 1, "diverged", 0.1)]
    table = mape_table(per_run_mape(collect_runs(paths)[1]))
    assert table["n_runs"].eq(0).all() and table["mape_mean"].isna().all()
    assert "— †" in mape_markdown(table)


def test_vs_published_alignment(table: pd.DataFrame) -> None:
    published = pd.DataFrame({"step": ["I", "I", "III"], "train_on": ["Dataset1", "Dataset1", "MIX"],
                              "test_on": ["Dataset1", "AFLOW", "MIX"], "mape_mean": [0.82, 2.16, 0.69],
                              "mape_std": [0.21, 1.26, 0.19]})
    comparison = vs_published(table, published).set_index(["step", "train_on", "test_on"])
    cell = comparison.loc[("I", "Dataset1", "Dataset1")]
    assert cell["published_mean"] == pytest.approx(0.82)
    assert cell["diff"] == pytest.approx(0.2 - 0.82)
    assert np.isnan(comparison.loc[("I", "Dataset1", "Dataset2"), "published_mean"])  # not published
    assert np.isnan(comparison.loc[("III", "MIX", "MIX"), "mape_mean"])  # published, not run here
    text = vs_published_markdown(vs_published(table, published))
    assert "| I (scratch) | Dataset1 | Dataset1 | 0.20 (0.10) † | 2 | 0.82 (0.21) | -0.62 |" in text


def test_heldout_table() -> None:
    rows = []
    for step, factor in (("I", 1.5), ("RF", 1.1)):
        for fold in range(2):
            true = np.array([1.0, 2.0, 5.0]) * (fold + 1)
            for i, t in enumerate(true):
                rows.append({"step": step, "train_on": "Dataset1", "fold": fold, "id": f"m{fold}{i}",
                             "formula": "NaCl", "kappa_true": t, "kappa_pred": t * factor, "status": "ok"})
    table = heldout_table(pd.DataFrame(rows)).set_index("step")
    assert list(table.columns) == ["train_on", "test_on", "n_folds", "n_failed", "n_materials", "mape",
                                   "mae_log10", "spearman", "mape_fold_mean", "mape_fold_std"]
    assert table.loc["I", "mape"] == pytest.approx(0.5)
    assert table.loc["I", "mae_log10"] == pytest.approx(np.log10(1.5))
    assert table.loc["RF", "spearman"] == pytest.approx(1.0)
    assert table.loc["I", "n_materials"] == 6 and table.loc["I", "n_folds"] == 2
    text = heldout_markdown(table.reset_index(), notes=["overlap note"])
    assert "| Dataset1 | I (scratch) | 2 | 6 | 0.50 |" in text and "overlap note" in text
