from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kappaflow.evaluation import collect_runs, mape_markdown, mape_table, per_run_mape, vs_published
from kappaflow.evaluation.runs import effective_status
from kappaflow.evaluation.tables import heldout_markdown, heldout_per_run, heldout_table, vs_published_markdown


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


def test_collected_predictions_say_whether_they_are_in_domain(synthetic_runs, tmp_path) -> None:
    """in_domain: no unseen element and a distance within the ensemble's held-out threshold (none: not checked)."""
    import json

    from kappaflow.evaluation.files import collect

    trust = []
    for path in synthetic_runs:
        folder = path.parent.parent
        threshold = 1.0 if folder.name == "Dataset1" else None
        (folder / "trust.json").write_text(json.dumps({"domain_threshold": threshold}))
        trust.append(folder / "trust.json")
    out = tmp_path / "out"
    collect(synthetic_runs, [], sorted(set(trust)), out / "p.parquet", out / "runs.csv", out / "history.csv")
    predictions = pd.read_parquet(out / "p.parquet")
    expected = (predictions["unseen_elements"] == "") & (
        (predictions["train_on"] != "Dataset1") | (predictions["nearest_distance"] <= 1.0))
    assert (predictions["in_domain"] == expected).all()
    assert not predictions["in_domain"].all() and predictions["in_domain"].any()


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
    ensembles, runs = [], []
    for step, factor in (("I", 1.5), ("RF", 1.1)):
        for fold in range(2):
            true = np.array([1.0, 2.0, 5.0]) * (fold + 1)
            for i, t in enumerate(true):
                row = {"step": step, "train_on": "Dataset1", "fold": fold, "id": f"m{fold}{i}", "formula": "NaCl",
                       "kappa_true": t, "kappa_pred": t * factor, "status": "ok"}
                ensembles.append(row)
                # two members per fold, 0.2 and 0.8 MAPE (a failed third is counted, never averaged)
                runs += [row | {"seed": 1, "kappa_pred": t * 1.2}, row | {"seed": 2, "kappa_pred": t * 1.8},
                         row | {"seed": 3, "kappa_pred": t * 9, "status": "diverged"}]
    per_run = heldout_per_run(pd.DataFrame(runs))
    assert set(per_run["run"]) == {"fold0_run1", "fold0_run2", "fold0_run3", "fold1_run1", "fold1_run2", "fold1_run3"}
    table = heldout_table(pd.DataFrame(ensembles), per_run).set_index("step")
    assert list(table.columns) == ["train_on", "test_on", "n_folds", "n_runs", "n_failed", "n_materials", "mape",
                                   "mae_log10", "spearman", "mape_run_mean", "mape_run_std"]
    assert table.loc["I", "mape"] == pytest.approx(0.5)  # the ensembles' pooled predictions
    assert table.loc["I", "mae_log10"] == pytest.approx(np.log10(1.5))
    assert table.loc["RF", "spearman"] == pytest.approx(1.0)
    assert table.loc["I", "mape_run_mean"] == pytest.approx(0.5) and table.loc["I", "mape_run_std"] == pytest.approx(0.3)
    assert (table.loc["I", "n_materials"], table.loc["I", "n_folds"], table.loc["I", "n_runs"],
            table.loc["I", "n_failed"]) == (6, 2, 6, 2)
    text = heldout_markdown(table.reset_index(), notes=["overlap note"])
    assert "| Dataset1 | I (scratch) | 2 | 6 (2 failed †) | 6 | 0.50 |" in text and "overlap note" in text
