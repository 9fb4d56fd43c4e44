"""The whole workflow, mirror to tables, figures and scan, on the smoke configuration (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

#: config/smoke.yaml's training and test sets (tests/test_rebuilds.py adds AFLOW).
SETS = ("Dataset1", "Dataset2", "MIX")
FIGURES = ["loss_curves", "parity", "mape_heatmap", "step_bars", "agl_vs_abinitio", "scan_low_kappa"]


def test_mape_table_covers_every_step_training_set_and_test_set(smoke_run: Path) -> None:
    table = pd.read_csv(smoke_run / "results" / "tables" / "mape_table.csv")
    network = table[table.step.isin(["I", "II", "III"])]
    expected = {
        (step, train_on, test_on)
        for step in ("I", "II", "III")
        for train_on in SETS
        for test_on in SETS
    }
    assert set(zip(network.step, network.train_on, network.test_on)) == expected
    assert len(network) == 3 * 3 * 3
    assert network.mape_mean.map(math.isfinite).all()
    assert (network.n_runs + network.n_failed == 2).all(), "smoke config trains 2 seeds per cell"
    assert {"RF"} <= set(table.step), "the composition-only baseline is in the table"


def test_published_comparison_and_per_run_predictions(smoke_run: Path) -> None:
    comparison = pd.read_csv(smoke_run / "results" / "tables" / "vs_published.csv")
    published = comparison.dropna(subset=["published_mean"]) if "published_mean" in comparison else comparison
    assert len(published) >= 44
    predictions = pd.read_parquet(smoke_run / "results" / "tables" / "predictions.parquet")
    assert (predictions.kappa_true > 0).all()
    assert set(predictions.test_on) == set(SETS)


def test_figures_and_report_inputs_exist(smoke_run: Path) -> None:
    for name in FIGURES:
        for ext in ("png", "pdf"):
            path = smoke_run / "results" / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path


def test_scan_accounts_for_every_screened_row(smoke_run: Path) -> None:
    scan = smoke_run / "results" / "scan"
    predictions = pd.read_csv(scan / "screening_predictions.csv")
    rejected = pd.read_csv(scan / "rejected.csv")
    models = predictions.model.unique()
    assert len(models) == 3
    per_model = predictions.groupby("model").mp_id.nunique()
    assert (per_model + len(rejected) == 140).all(), "smoke config screens 140 materials"
    assert rejected.reason.str.startswith("excluded element(s) Ac").sum() >= 100, "radioactive: not screened"
    candidates = pd.read_csv(scan / "low_kappa_candidates.csv")
    assert set(candidates.model) == set(models), "every ensemble has candidates or a note saying why not"
    assert all(str(note).startswith("no candidate") for note in candidates.loc[candidates["rank"].isna(), "note"])


def test_quarantine_accounts_for_every_input_row(smoke_run: Path) -> None:
    rejected = pd.read_csv(smoke_run / "results" / "data" / "rejected.csv")
    for dataset, n_in in (("aflow", 120), ("dataset1", 95), ("dataset2", 143)):
        kept = pd.read_parquet(smoke_run / "results" / "data" / f"{dataset}.parquet")
        assert len(kept) + int((rejected.dataset == dataset).sum()) == n_in, dataset


def test_second_run_has_nothing_to_do(smoke_run: Path, smoke_snakemake) -> None:
    output = smoke_snakemake(smoke_run, "--dry-run", "--cores", "2")
    assert "Nothing to be done" in output


def test_results_document_is_rendered_from_the_result_files(smoke_run: Path) -> None:
    doc = (smoke_run / "results" / "docs" / "results.md").read_text()
    tables = smoke_run / "results" / "tables"
    assert doc.index("## Configuration") < doc.index("stage1_epochs: 2") < doc.index("## MAPE on κ")
    assert "gpus" not in doc and "eval_batch_size" not in doc, "execution settings are not results"
    for name in ("mape_table.md", "vs_published.md", "heldout_table.md"):
        table = (tables / name).read_text().strip()
        assert table.replace("\n## ", "\n### ").removeprefix("## ").strip() in doc, name
    assert "Does two-stage transfer (step III) beat step II (paper protocol)? Dataset1: " in doc
    assert "Does two-stage transfer (step III) beat step II (held-out protocol)? Dataset1: " in doc
    assert "### Calibration of the ensemble spread (held-out folds)" in doc
    assert "Trained by: kappaflow 0.1.0 commit " in doc
    assert "| train | 20 |" in doc, "wall time of every training job: 18 runs and the 2 stage-1 runs"
    assert "| train_stage1 |" not in doc, "stage 1 is step II on AFLOW (smoke: stage1_epochs = epochs)"
    assert not (smoke_run / "docs").exists(), "the smoke DAG never writes into docs/"


def test_every_prediction_says_how_far_it_can_be_trusted(smoke_run: Path) -> None:
    """Trust columns end to end: held-out fold ensembles → calibration → each ensemble's trust files → the scan."""
    results = smoke_run / "results"
    folds = pd.read_parquet(results / "heldout" / "stepIII" / "Dataset1" / "fold0" / "ensemble.parquet")
    assert (folds["n_models"] <= 2).all() and folds["nearest_id"].notna().all(), "2 members per fold, distances"
    calibration = pd.read_csv(results / "tables" / "calibration.csv")
    assert set(zip(calibration.step, calibration.train_on)) == {(step, "Dataset1") for step in ("I", "II", "III")}
    for step in ("I", "II", "III"):
        for train_on in SETS:
            trust = json.loads((results / "models" / f"step{step}" / train_on / "trust.json").read_text())
            domain = pd.read_parquet(results / "models" / f"step{step}" / train_on / "domain.parquet")
            assert len(domain) > 50 and [c for c in domain.columns if c.startswith("features_")], (step, train_on)
            if train_on != "Dataset1":  # config/smoke.yaml cross-validates Dataset1 only
                assert trust["scale"] is None and "heldout.train_sets" in trust["calibration_note"]
    predictions = pd.read_csv(results / "scan" / "screening_predictions.csv")
    for column in ("kappa_low_wmk", "kappa_high_wmk", "calibrated", "calibration_note", "nearest_id",
                   "nearest_formula", "nearest_kappa_wmk", "nearest_distance", "in_domain", "ensembles_rel_spread"):
        assert column in predictions.columns, column
    assert predictions["nearest_id"].notna().all() and (predictions["nearest_distance"] >= 0).all()
    candidates = pd.read_csv(results / "scan" / "low_kappa_candidates.csv").dropna(subset=["rank"])
    inside = predictions[predictions["in_domain"].astype(str) == "True"]
    assert set(zip(candidates.model, candidates.mp_id)) <= set(zip(inside.model, inside.mp_id)), "candidates in domain"


def test_backbones_are_compared(smoke_run: Path) -> None:
    """config/smoke.yaml compares three backbones (matgl mirror folders and a wheel-shipped one) by frozen
    regression, next to the fine-tuned MEGNet, on both protocols."""
    results = smoke_run / "results"
    backbones = ["megnet-2018-eform", "m3gnet-2018-eform", "chgnet-0.3.0"]
    for name in backbones:
        for key in ("aflow", "dataset1", "dataset2"):
            table = pd.read_parquet(results / "representations" / name / f"{key}.parquet")
            rejected = pd.read_csv(results / "representations" / name / f"{key}.rejected.csv")
            kept = pd.read_parquet(results / "data" / f"{key}.parquet")
            assert len(table) + len(rejected) == len(kept), (name, key)
    comparison = pd.read_csv(results / "tables" / "backbone_comparison.csv")
    frozen = comparison[comparison.way == "frozen + GBT"]
    assert set(frozen.backbone) == set(backbones) and set(frozen.train_on) == set(SETS)
    assert frozen.paper_mape_mean.notna().all() and frozen.heldout_mape[frozen.train_on == "Dataset1"].notna().all()
    assert (frozen.paper_runs == 2).all() and (comparison.throughput_ratio[frozen.index] > 0).all()
    heldout = frozen[frozen.train_on == "Dataset1"]  # paired by material with MEGNet's step-II folds
    assert heldout.heldout_vs_reference_n.between(1, 95).all() and heldout.heldout_verdict.notna().all()
    assert "### Backbones compared" in (results / "docs" / "results.md").read_text()


def test_a_second_backbone_is_fine_tuned(smoke_run: Path) -> None:
    """config/smoke.yaml fine-tunes M3GNet-2018 (its own 5 Å graphs with three-body terms) on Dataset1 like steps
    II and III: each run predicts its validation split, the comparison pairs it with fine-tuned MEGNet by seed,
    and its held-out fold ensembles predict every Dataset1 material once, with a spread whose calibrated coverage
    the comparison reports."""
    finetuned = smoke_run / "results" / "finetuned" / "m3gnet-2018-eform"
    megnet = pd.read_parquet(smoke_run / "results" / "models" / "stepII" / "Dataset1" / "run1" / "predictions.parquet")
    comparison = pd.read_csv(smoke_run / "results" / "tables" / "backbone_comparison.csv")
    data = pd.read_parquet(smoke_run / "results" / "data" / "dataset1.parquet")
    for step in ("II", "III"):
        run = finetuned / f"step{step}" / "Dataset1" / "run1"
        info = json.loads((run / "run.json").read_text())
        predictions = pd.read_parquet(run / "predictions.parquet")
        assert info["status"] == "ok" and info["epochs_run"] == 2 and set(predictions.step) == {step}
        assert len(predictions) == info["n_val"] and np.isfinite(predictions.kappa_pred).all()
        assert set(predictions.id) == set(megnet[megnet.test_on == "Dataset1"].id), "the same validation split"
        fine = comparison[(comparison.backbone == "m3gnet-2018-eform") & (comparison.way == f"fine-tuned (step {step})")]
        assert fine.train_on.tolist() == ["Dataset1"] and fine.paper_runs.tolist() == [1]
        assert fine.vs_reference_n_improved.notna().all() and fine.fit_s_median.gt(0).all()
        heldout = pd.read_parquet(run.parent / "heldout_predictions.parquet")  # 2 folds × 2 member seeds, smoke.yaml
        assert sorted(heldout.id) == sorted(data.id) and set(heldout.fold) == {0, 1}
        assert (heldout.n_models == 2).all() and fine.heldout_mape.notna().all()
        # the members' spread, calibrated across the two folds (NaN only where a member predicted κ ≤ 0)
        assert heldout.log_std.notna().mean() > 0.5 and fine.heldout_coverage_1sigma.between(0, 1).all()
        # each test material's closest training material of its fold, in the backbone's fine-tuned representation
        assert heldout.nearest_id.notna().all() and (heldout.nearest_id != heldout.id).all()
        assert (heldout.nearest_distance > 0).all()
        # what kappaflow predict reads beside the ensemble: its domain, calibrated by those folds
        trust = json.loads((run.parent / "trust.json").read_text())
        assert trust["ensemble"] == f"m3gnet-2018-eform/step{step}/Dataset1" and trust["runs"] == ["run1"]
        assert trust["scale"] > 0 and trust["domain_threshold"] > 0, trust
        domain = pd.read_parquet(run.parent / "domain.parquet")
        assert sorted(domain.id) == sorted(data.id) and "features_run1" in domain.columns
    stage1 = json.loads((finetuned / "stage1" / "aflow" / "run1" / "run.json").read_text())
    assert stage1["step"] == "stage1" and stage1["train_on"] == "AFLOW" and stage1["status"] == "ok"
    step3 = json.loads((finetuned / "stepIII" / "Dataset1" / "run1" / "run.json").read_text())
    assert step3["init_checkpoint"] == "results/finetuned/m3gnet-2018-eform/stage1/aflow/run1/best.ckpt"
    # the stage-2 network knows the elements of its stage 1 too
    assert set(stage1["training_elements"]) <= set(step3["training_elements"])


def test_the_shipped_model_is_exported_with_its_card_and_checks(smoke_run: Path) -> None:
    from kappaflow.shipped import check_predictions, read_card

    model = smoke_run / "results" / "shipped" / "model"
    card = read_card(model)
    assert (card["training"]["step"], card["training"]["train_on"]) == ("III", "Dataset1")
    assert card["members"] == ["run1", "run2"] and card["heldout"]["rows"][0]["test_on"] == "Dataset1"
    assert card["configuration"]["ship"]["members"] == 2 and "scan" not in card["configuration"]
    assert {path.name for path in model.iterdir()} >= {"run1", "run2", "domain.parquet", "trust.json", "check"}
    assert len(check_predictions(model)) == 3
