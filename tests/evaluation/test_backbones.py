from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from kappaflow.evaluation.backbones import COLUMNS, comparison_markdown, comparison_table

SEEDS = range(9)
TRUE = np.array([1.0, 2.0, 4.0, 10.0])
REFERENCE = ("megnet-2018-eform", "fine-tuned (step II)")
FROZEN = "frozen + GBT"
#: Throughput of a comparison without frozen representations.
NO_THROUGHPUT = pd.DataFrame(columns=["backbone", "structures", "seconds"])


def reference_mape(seed: int) -> float:
    return 0.5 + 0.01 * seed


def fine_tuned_per_run() -> pd.DataFrame:
    """Steps II and III on Dataset1 (III's run 8 collapsed), and rows the table must ignore."""
    rows = []
    for seed in SEEDS:
        rows += [
            ("II", seed, "Dataset1", "ok", reference_mape(seed)),
            ("II", seed, "Dataset2", "ok", 9.0),
            ("III", seed, "Dataset1", "collapsed" if seed == 8 else "ok", 0.4),
            ("I", seed, "Dataset1", "ok", 0.9),
        ]
    frame = pd.DataFrame(rows, columns=["step", "run", "test_on", "status", "mape"])
    return frame.assign(train_on="Dataset1", mae_log10=0.1, spearman=0.5, n_materials=4)


def frozen_paper(backbone: str, errors: dict[int, float], train_on: str = "Dataset1") -> pd.DataFrame:
    """κ_pred = κ_true·(1 + error): per-run MAPE on the own test set = |error|; fit_s = seed + 1."""
    frames = []
    for seed, error in errors.items():
        for test_on, factor in ((train_on, 1.0 + error), ("Dataset2", 5.0)):
            frames.append(pd.DataFrame({
                "step": "frozen", "backbone": backbone, "train_on": train_on, "run": seed, "test_on": test_on,
                "id": [f"mp-{i}" for i in range(len(TRUE))], "formula": "NaCl", "kappa_true": TRUE,
                "kappa_pred": TRUE * factor, "status": "ok", "fit_s": float(seed + 1)}))
    return pd.concat(frames, ignore_index=True)


def heldout_rows(errors_by_fold: dict[int, list[float]], **columns: object) -> pd.DataFrame:
    """One row per material and fold, κ_pred = κ_true·(1 + error)."""
    frames = []
    for fold, errors in errors_by_fold.items():
        true = TRUE[: len(errors)]
        frames.append(pd.DataFrame({
            "train_on": "Dataset1", "fold": fold, "id": [f"mp-{fold}-{i}" for i in range(len(errors))],
            "kappa_true": true, "kappa_pred": true * (1.0 + np.asarray(errors)), "status": "ok", **columns}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    fine_heldout = pd.concat([heldout_rows({0: [0.3, -0.3], 1: [0.3, 0.3]}, step="II"),
                              heldout_rows({0: [5.0]}, step="RF", seed=0),
                              heldout_rows({0: [2.0]}, step="I")])
    frozen = [
        frozen_paper("good", dict.fromkeys(SEEDS, 0.2)),
        frozen_paper("same", {seed: reference_mape(seed) for seed in SEEDS}),
        frozen_paper("noisy", {s: reference_mape(s) + (-1) ** s * 0.01 * (s + 1) for s in SEEDS}),
        frozen_paper("bad", dict.fromkeys(SEEDS, 0.9)),
        frozen_paper("once", {0: 0.1}),
        frozen_paper("good", dict.fromkeys(SEEDS, 0.2), train_on="MIX"),
    ]
    # fold 0: one material 40 % off, fold 1: three exact ones → pooled MAPE 0.1 (mean over folds: 0.2)
    frozen_heldout = [heldout_rows({0: [0.4], 1: [0.0, 0.0, 0.0]}, step="frozen", backbone="good", seed=1)]
    throughput = pd.DataFrame({"backbone": ["megnet-2018-eform", "megnet-2018-eform", "good"],
                               "structures": [60, 40, 50], "seconds": [5.0, 5.0, 10.0]})
    return comparison_table(fine_tuned_per_run(), fine_heldout, frozen, frozen_heldout, throughput)


def row(table: pd.DataFrame, backbone: str, way: str = FROZEN, train_on: str = "Dataset1") -> pd.Series:
    match = table[(table["backbone"] == backbone) & (table["way"] == way) & (table["train_on"] == train_on)]
    assert len(match) == 1
    return match.iloc[0]


def test_layout_and_order(table: pd.DataFrame) -> None:
    assert list(table.columns) == COLUMNS
    assert table[["backbone", "way", "train_on"]].values.tolist() == [
        [*REFERENCE, "Dataset1"], ["megnet-2018-eform", "fine-tuned (step III)", "Dataset1"],
        *([name, FROZEN, "Dataset1"] for name in ("good", "same", "noisy", "bad", "once")),
        ["good", FROZEN, "MIX"],
    ]


def test_reference_row(table: pd.DataFrame) -> None:
    reference = row(table, *REFERENCE)
    mapes = [reference_mape(seed) for seed in SEEDS]
    assert reference["paper_mape_mean"] == pytest.approx(0.54)
    assert reference["paper_mape_std"] == pytest.approx(np.std(mapes))  # ddof=0
    assert reference["paper_runs"] == 9
    assert reference["heldout_mape"] == pytest.approx(0.3)  # steps RF and I ignored
    assert reference["verdict"] == "reference"
    empty = ["vs_reference_median_diff", "vs_reference_p", "fit_s_median", "structures_per_s",
             "throughput_ratio"]
    assert reference[empty].isna().all()
    step3 = row(table, "megnet-2018-eform", "fine-tuned (step III)")
    assert step3["paper_runs"] == 8 and step3["paper_mape_mean"] == pytest.approx(0.4)
    assert math.isnan(step3["heldout_mape"])


def test_clearly_better_frozen_backbone(table: pd.DataFrame) -> None:
    good = row(table, "good")
    assert good["paper_mape_mean"] == pytest.approx(0.2)
    assert good["paper_mape_std"] == pytest.approx(0.0, abs=1e-12)
    assert good["paper_runs"] == 9
    assert good["heldout_mape"] == pytest.approx(0.1)  # pooled over materials, not averaged over folds
    assert good["fit_s_median"] == pytest.approx(5.0)
    assert good["structures_per_s"] == pytest.approx(5.0) and good["throughput_ratio"] == pytest.approx(0.5)
    assert good["vs_reference_median_diff"] == pytest.approx(0.2 - 0.54)
    assert good["vs_reference_n_improved"] == 9
    assert good["vs_reference_p"] == pytest.approx(2 / 2**9)  # exact two-sided: all 9 differences negative
    assert good["verdict"] == "better"
    assert row(table, "bad")["verdict"] == "worse"


def test_no_difference_beyond_noise(table: pd.DataFrame) -> None:
    same = row(table, "same")
    assert same["vs_reference_median_diff"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(same["vs_reference_p"]) and same["verdict"] == "no difference beyond noise"
    noisy = row(table, "noisy")
    assert noisy["vs_reference_p"] > 0.05 and noisy["verdict"] == "no difference beyond noise"
    once = row(table, "once")  # one pair: no test
    assert once["vs_reference_n_improved"] == 1 and math.isnan(once["vs_reference_p"])
    assert once["verdict"] == "no difference beyond noise"
    mix = row(table, "good", train_on="MIX")  # no reference trained on MIX
    assert math.isnan(mix["vs_reference_median_diff"]) and mix["verdict"] == "no paired runs"
    assert math.isnan(mix["heldout_mape"]) and mix["heldout_verdict"] == "no paired materials"


def test_without_heldout_or_frozen() -> None:
    table = comparison_table(fine_tuned_per_run(), None, [], [], NO_THROUGHPUT)
    assert table["way"].tolist() == ["fine-tuned (step II)", "fine-tuned (step III)"]
    assert table["heldout_mape"].isna().all()


def test_markdown(table: pd.DataFrame) -> None:
    text = comparison_markdown(table)
    assert text.startswith("## Backbones compared\n")
    assert "no winner is claimed within noise" in text and "Wilcoxon" in text
    lines = [line for line in text.splitlines() if line.startswith("| Dataset1") or line.startswith("| MIX")]
    assert len(lines) == len(table)
    assert "| Dataset1 | good | frozen + GBT | 0.20 (0.00) | 9 | 0.10 | — |" in text
    assert "better" in lines[2] and "reference" in lines[0]


def test_fine_tuned_backbones_are_paired_with_fine_tuned_megnet() -> None:
    """Another backbone fine-tuned like step II: its own row of that way, its collapsed run left out, compared
    by seed with MEGNet's step II, its held-out fold ensembles pooled; no throughput (the representation's)."""
    runs = frozen_paper("m3gnet", dict.fromkeys(SEEDS, 0.1)).assign(step="II")
    runs.loc[(runs["run"] == 8), "status"] = "collapsed"
    heldout = heldout_rows({0: [0.2, -0.2], 1: [0.2]}, step="II", backbone="m3gnet")
    table = comparison_table(fine_tuned_per_run(), None, [], [], NO_THROUGHPUT, runs, heldout)
    fine = row(table, "m3gnet", "fine-tuned (step II)")
    assert fine["paper_runs"] == 8 and fine["paper_mape_mean"] == pytest.approx(0.1)
    assert fine["heldout_mape"] == pytest.approx(0.2)
    assert fine["fit_s_median"] == pytest.approx(4.5)  # seeds 0-7: fit_s 1..8
    assert fine["vs_reference_n_improved"] == 8 and fine["verdict"] == "better"
    assert math.isnan(fine["structures_per_s"])
    assert table["backbone"].tolist() == ["megnet-2018-eform", "m3gnet", "megnet-2018-eform"]


def test_each_fine_tuned_step_of_a_backbone_is_its_own_row() -> None:
    """Steps II and III of another backbone: one row each (the way named by the predictions' step), each with its
    own runs and held-out fold ensembles, both compared with MEGNet's step II."""
    runs = pd.concat([frozen_paper("m3gnet", dict.fromkeys(SEEDS, 0.1)).assign(step="II"),
                      frozen_paper("m3gnet", dict.fromkeys(SEEDS, 3.0)).assign(step="III")], ignore_index=True)
    heldout = pd.concat([heldout_rows({0: [0.2]}, step="II", backbone="m3gnet"),
                         heldout_rows({0: [0.7]}, step="III", backbone="m3gnet")], ignore_index=True)
    table = comparison_table(fine_tuned_per_run(), None, [], [], NO_THROUGHPUT, runs, heldout)
    second, third = row(table, "m3gnet", "fine-tuned (step II)"), row(table, "m3gnet", "fine-tuned (step III)")
    assert (second["paper_mape_mean"], third["paper_mape_mean"]) == (pytest.approx(0.1), pytest.approx(3.0))
    assert (second["heldout_mape"], third["heldout_mape"]) == (pytest.approx(0.2), pytest.approx(0.7))
    assert (second["verdict"], third["verdict"]) == ("better", "worse")


def test_heldout_errors_are_paired_by_material_with_fine_tuned_megnet() -> None:
    """Under the held-out protocol each material's out-of-fold error is paired with the reference's: a backbone
    better on all 11 shared materials is better beyond noise, one that alternates around the reference is not,
    and materials only one side predicted (or failed: status not ok) are not pairs."""
    twelve = {0: [0.3] * 4, 1: [0.3] * 4, 2: [0.3] * 4}
    reference = heldout_rows(twelve, step="II")
    better = heldout_rows({fold: [0.1] * 4 for fold in twelve}, step="II", backbone="m3gnet")
    extra = heldout_rows({3: [0.0]}, step="II", backbone="m3gnet")  # mp-3-0: the reference never predicted it
    failed = better["id"] == "mp-0-0"
    better.loc[failed, ["kappa_pred", "status"]] = [np.nan, "diverged"]
    noise = [0.3 + (-1) ** i * 0.05 * (i + 1) for i in range(4)]
    noisy = heldout_rows(dict.fromkeys(twelve, noise), step="II", backbone="noisy")
    table = comparison_table(fine_tuned_per_run(), reference, [], [], NO_THROUGHPUT, None,
                             pd.concat([better, extra, noisy], ignore_index=True))
    fine = row(table, "m3gnet", "fine-tuned (step II)")
    assert fine["heldout_vs_reference_n"] == 11 and fine["heldout_vs_reference_n_improved"] == 11
    assert fine["heldout_vs_reference_mean_diff"] == pytest.approx(-0.2)  # the MAPE difference on the 11 pairs
    assert fine["heldout_vs_reference_p"] == pytest.approx(2 / 2**11)  # exact sign flips: only all-negative or -positive
    assert fine["heldout_verdict"] == "better"
    wobbly = row(table, "noisy", "fine-tuned (step II)")
    assert wobbly["heldout_vs_reference_n"] == 12 and wobbly["heldout_vs_reference_p"] > 0.05
    assert wobbly["heldout_verdict"] == "no difference beyond noise"
    megnet = row(table, "megnet-2018-eform", "fine-tuned (step II)")
    assert megnet["heldout_verdict"] == "reference" and math.isnan(megnet["heldout_vs_reference_p"])
    text = comparison_markdown(table)
    assert "| -0.200 (11/11, p 0.00098) | better |" in text


def test_calibrated_coverage_of_fine_tuned_fold_ensembles_is_cross_fitted() -> None:
    """Three folds of four materials whose |log10 error| / spread are known: each fold judged with the factor
    fitted on the other two (the 68.3 % quantile of their eight ratios) covers 3, 2 and 3 of its 4 materials
    within ±1σ, all within ±2σ; a way without a spread (frozen) has no coverage."""
    ratios = {0: [1.0, 2.0, 3.0, 4.0], 1: [1.5, 2.5, 3.5, 4.5], 2: [1.2, 2.2, 3.2, 4.2]}
    sigma = 0.05
    frames = []
    for fold, values in ratios.items():
        frames.append(pd.DataFrame({
            "step": "II", "backbone": "m3gnet", "train_on": "Dataset1", "fold": fold,
            "id": [f"mp-{fold}-{i}" for i in range(4)], "kappa_true": 2.0,
            "kappa_pred": 2.0 * 10 ** (sigma * np.asarray(values) * (-1) ** fold), "log_std": sigma, "status": "ok"}))
    fine_heldout = pd.concat(frames, ignore_index=True)
    frozen = heldout_rows({0: [0.1], 1: [0.2]}, step="frozen", backbone="m3gnet", seed=1)
    table = comparison_table(fine_tuned_per_run(), None, [], [frozen], NO_THROUGHPUT, None, fine_heldout)
    fine = row(table, "m3gnet", "fine-tuned (step II)")
    assert fine["heldout_coverage_1sigma"] == pytest.approx(8 / 12)
    assert fine["heldout_coverage_2sigma"] == pytest.approx(1.0)
    assert math.isnan(row(table, "m3gnet", FROZEN)["heldout_coverage_1sigma"])
    assert "| 0.67 / 1.00 |" in comparison_markdown(table)


def test_the_heldout_verdict_follows_the_mean_error_not_the_typical_one() -> None:
    """Better on most materials but far worse on a few: the held-out MAPE is worse, and so is the verdict (a rank
    test of the median would not say so)."""
    reference = heldout_rows({fold: [0.3] * 4 for fold in range(8)}, step="II")
    mostly = {fold: [0.25, 0.25, 0.25, 3.0] for fold in range(8)}  # 24 materials 0.05 better, 8 of them 2.7 worse
    other = heldout_rows(mostly, step="II", backbone="m3gnet")
    table = comparison_table(fine_tuned_per_run(), reference, [], [], NO_THROUGHPUT, None, other)
    fine = row(table, "m3gnet", "fine-tuned (step II)")
    assert fine["heldout_mape"] > row(table, "megnet-2018-eform", "fine-tuned (step II)")["heldout_mape"]
    assert fine["heldout_vs_reference_mean_diff"] == pytest.approx((24 * -0.05 + 8 * 2.7) / 32)
    assert fine["heldout_vs_reference_n_improved"] == 24 and fine["heldout_verdict"] == "worse"
