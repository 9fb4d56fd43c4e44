from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from kappaflow.calibration import (
    ONE_SIGMA,
    TWO_SIGMA,
    calibration_figure,
    coverage_markdown,
    coverage_table,
    cross_fitted,
    domain_threshold,
    fit_scale,
    log_error,
    trust_records,
    write_calibration,
)
from scipy.stats import norm


def _ensemble(n: int, scale: float, seed: int, folds: int = 5, **keys: object) -> pd.DataFrame:
    """Held-out rows whose log10 residual is Normal(0, scale·σ_i), σ_i ~ U(0.05, 0.3)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.05, 0.3, n)
    true = 10 ** rng.uniform(-1, 2, n)
    residual = rng.normal(0, scale * sigma)
    distance = rng.uniform(0, 4, n)
    frame = pd.DataFrame({
        "fold": np.arange(n) % folds, "id": [f"m{seed}-{i}" for i in range(n)], "kappa_true": true,
        "kappa_pred": true * 10**residual, "log_std": sigma, "nearest_distance": distance,
        "unphysical": False,
    })
    return frame.assign(**{"step": "I", "train_on": "Dataset1", **keys})


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Two 5-fold groups with true scale 2 (one with a few unusable rows) and a single-fold group."""
    mix = _ensemble(2000, 2.0, seed=1, train_on="MIX")
    mix.loc[:4, "kappa_pred"] = -1.0
    mix.loc[:4, "unphysical"] = True
    mix.loc[5:9, "log_std"] = np.nan
    single = _ensemble(200, 2.0, seed=2, folds=1, step="II", train_on="Dataset2")
    return pd.concat([mix, single, _ensemble(2000, 2.0, seed=3)], ignore_index=True)


@pytest.fixture(scope="module")
def cross(rows: pd.DataFrame) -> pd.DataFrame:
    return cross_fitted(rows)


def test_constants() -> None:
    assert ONE_SIGMA == pytest.approx(2 * norm.cdf(1) - 1)
    assert TWO_SIGMA == pytest.approx(2 * norm.cdf(2) - 1)


def test_log_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = log_error(np.array([10.0, 0.0, -2.0, 5.0, np.nan]), np.array([1.0, 1.0, 1.0, 0.0, 1.0]))
    assert out[0] == pytest.approx(1.0)
    assert np.isnan(out[1:]).all()
    assert log_error(pd.Series([1.0]), pd.Series([100.0]))[0] == pytest.approx(-2.0)


def test_fit_scale_recovers_known_scale() -> None:
    rng = np.random.default_rng(7)
    sigma = rng.uniform(0.05, 0.3, 20000)
    residual = rng.normal(0, 2 * sigma)
    assert fit_scale(residual, sigma) == pytest.approx(2.0, rel=0.05)
    assert fit_scale(residual, sigma, level=TWO_SIGMA) == pytest.approx(4.0, rel=0.05)


def test_fit_scale_ignores_unusable_rows() -> None:
    residual = np.array([0.1, 0.2, np.nan, 5.0, 5.0])
    sigma = np.array([0.1, 0.1, 0.1, 0.0, np.nan])
    assert fit_scale(residual, sigma, level=1.0) == pytest.approx(2.0)
    assert np.isnan(fit_scale(np.array([np.nan]), np.array([0.1])))


def test_cross_fitted_columns_and_order(rows: pd.DataFrame, cross: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(cross[rows.columns], rows)
    mix = cross[cross["train_on"] == "MIX"]
    assert not mix["usable"].iloc[:10].any() and mix["usable"].iloc[10:].all()
    assert mix["z"].iloc[:10].isna().all() and not mix["within_1sigma"].iloc[:10].any()
    usable = cross[cross["usable"] & cross["scale"].notna()]
    expected = usable["residual"].abs() <= usable["scale"] * usable["log_std"]
    assert (usable["within_1sigma"] == expected).all()


def test_cross_fitted_coverage(cross: pd.DataFrame) -> None:
    table = coverage_table(cross).set_index(["step", "train_on"])
    for key in [("I", "Dataset1"), ("I", "MIX")]:
        row = table.loc[key]
        assert row["coverage_1sigma"] == pytest.approx(ONE_SIGMA, abs=0.05)
        assert row["coverage_2sigma"] == pytest.approx(TWO_SIGMA, abs=0.03)
        assert row["raw_coverage_1sigma"] == pytest.approx(2 * norm.cdf(0.5) - 1, abs=0.05)
        assert row["raw_coverage_1sigma"] < row["coverage_1sigma"] - 0.2
        assert row["scale"] == pytest.approx(2.0, rel=0.1)
    assert table.loc[("I", "MIX"), "n_usable"] == 1990
    assert table.loc[("I", "MIX"), "n_materials"] == 2000


def test_scale_of_a_fold_excludes_that_fold() -> None:
    rows = _ensemble(1000, 2.0, seed=11)
    odd = rows["fold"] == 3
    rows.loc[odd, "kappa_pred"] = rows.loc[odd, "kappa_true"] * 10 ** (10 * rows.loc[odd, "log_std"])
    cross = cross_fitted(rows)
    residual = np.log10(rows["kappa_pred"]) - np.log10(rows["kappa_true"])
    for fold in range(5):
        own = rows["fold"] == fold
        expected = fit_scale(residual[~own], rows.loc[~own, "log_std"])
        assert cross.loc[own, "scale"].to_numpy() == pytest.approx(np.full(own.sum(), expected), rel=1e-12)
    assert cross.loc[odd, "scale"].iloc[0] == pytest.approx(2.0, rel=0.15)
    assert cross.loc[~odd, "scale"].min() > 3.0


def test_single_fold_group(cross: pd.DataFrame) -> None:
    single = cross[cross["step"] == "II"]
    assert single["scale"].isna().all() and single["z"].isna().all()
    assert not single["within_1sigma"].any() and not single["within_2sigma"].any()
    row = coverage_table(cross).set_index(["step", "train_on"]).loc[("II", "Dataset2")]
    assert row["folds"] == 1 and np.isnan(row["coverage_1sigma"]) and np.isfinite(row["scale"])


def test_coverage_table_columns_and_order(cross: pd.DataFrame) -> None:
    table = coverage_table(cross)
    assert list(table.columns) == [
        "step", "train_on", "folds", "n_materials", "n_usable", "scale", "raw_coverage_1sigma",
        "raw_coverage_2sigma", "coverage_1sigma", "coverage_2sigma", "median_abs_log_error",
    ]
    assert list(zip(table["step"], table["train_on"], strict=True)) == [
        ("I", "Dataset1"), ("I", "MIX"), ("II", "Dataset2")
    ]
    assert table["folds"].tolist() == [5, 5, 1]


def _stepped(distance: np.ndarray, change: float, seed: int) -> np.ndarray:
    """Absolute errors ~ U(0.05, 0.1) below ``change`` and four times larger beyond it."""
    error = np.random.default_rng(seed).uniform(0.05, 0.1, distance.size)
    return np.where(distance < change, error, 4 * error)


def test_domain_threshold_finds_the_step() -> None:
    distance = np.random.default_rng(0).uniform(0, 4, 400)
    threshold, note = domain_threshold(distance, _stepped(distance, 2.0, seed=1), factor=1.5)
    cuts = np.quantile(distance, (0.5, 0.6))
    assert cuts[0] <= threshold <= cuts[1]
    assert threshold < distance.max()
    assert "beyond distance" in note and "≥ 1.5×" in note


def test_domain_threshold_does_not_fire_early() -> None:
    distance = np.random.default_rng(0).uniform(0, 4, 400)
    threshold, _ = domain_threshold(distance, _stepped(distance, 3.2, seed=1), factor=1.5)
    cut_below, cut_above = np.quantile(distance, (0.5, 0.7))
    assert cut_below < threshold <= cut_above < 3.2


def test_domain_threshold_flat_error() -> None:
    rng = np.random.default_rng(3)
    distance = rng.uniform(0, 3, 300)
    threshold, note = domain_threshold(distance, rng.uniform(0.05, 0.1, 300), factor=1.5)
    assert threshold == pytest.approx(distance.max())
    assert "does not grow" in note and "largest held-out distance" in note


def test_domain_threshold_too_few_rows() -> None:
    distance = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, np.nan])
    threshold, note = domain_threshold(distance, np.linspace(0.1, 1.0, 10), factor=1.5)
    assert np.isnan(threshold) and "no threshold" in note


def test_trust_records(cross: pd.DataFrame) -> None:
    records = trust_records(cross, factor=1.5)
    assert list(records) == ["stepI/Dataset1", "stepI/MIX", "stepII/Dataset2"]
    keys = {"scale", "coverage_1sigma", "coverage_2sigma", "raw_coverage_1sigma", "raw_coverage_2sigma",
            "n_usable", "folds", "domain_threshold", "domain_note"}
    for record in records.values():
        assert set(record) == keys
        assert isinstance(record["n_usable"], int) and isinstance(record["folds"], int)
        assert isinstance(record["domain_note"], str)
    assert records["stepII/Dataset2"]["coverage_1sigma"] is None
    assert isinstance(records["stepI/MIX"]["domain_threshold"], float)
    text = json.dumps(records, allow_nan=False)
    assert "NaN" not in text and json.loads(text)["stepI/MIX"]["n_usable"] == 1990


def test_coverage_markdown(cross: pd.DataFrame) -> None:
    text = coverage_markdown(coverage_table(cross))
    assert text.startswith("## Calibration of the ensemble spread (held-out folds)")
    assert "| step | train on | folds | materials | factor s | ±1σ raw | ±1σ calibrated |" in text
    assert "2000 (1990 usable)" in text and "0.68" in text and "cross-fitted" in text
    table = [line.replace(r"\|", "") for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 5  # header, rule, 3 groups
    assert {line.count("|") for line in table} == {11}


def test_calibration_figure(cross: pd.DataFrame, tmp_path) -> None:
    paths = calibration_figure(cross, tmp_path / "calibration.png", factor=1.5)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.parent == tmp_path and p.is_file() and p.stat().st_size > 1000 for p in paths)


def test_write_calibration(rows: pd.DataFrame, tmp_path) -> None:
    paths = []
    for (step, train_on, fold), part in rows.groupby(["step", "train_on", "fold"]):
        paths.append(tmp_path / f"step{step}" / train_on / f"fold{fold}" / "ensemble.parquet")
        paths[-1].parent.mkdir(parents=True)
        part.to_parquet(paths[-1], index=False)
    out = tmp_path / "out"
    records = write_calibration(paths, out / "trust.json", out / "calibration.csv", out / "calibration.md",
                                out / "calibration.png", factor=1.5)
    assert json.loads((out / "trust.json").read_text()) == records
    assert records["stepI/MIX"]["n_usable"] == 1990
    assert len(pd.read_csv(out / "calibration.csv")) == 3
    assert (out / "calibration.md").read_text().startswith("## Calibration")
    assert (out / "calibration.png").is_file() and (out / "calibration.pdf").is_file()
