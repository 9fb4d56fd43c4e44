from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kappaflow.domain import features_frame
from kappaflow.trust import (
    TRUST_COLUMNS,
    interval,
    log_spread,
    read_trust,
    trust_columns,
    trust_warnings,
    write_ensemble_trust,
)

RNG = np.random.default_rng(1)
IDS = [f"m{i}" for i in range(30)]
FEATURES = RNG.normal(size=(3, 30, 4))
KAPPA = RNG.uniform(0.5, 50, 30)


def write_ensemble(folder: Path, heldout: dict | None, statuses=("ok", "ok", "diverged"), reason: str = "") -> dict:
    """Three runs' run.json and features, and the ensemble's trust files in ``folder``."""
    run_jsons, features = [], []
    for seed, status in enumerate(statuses, start=1):
        run = folder / f"run{seed}"
        run.mkdir(parents=True, exist_ok=True)
        (run / "run.json").write_text(json.dumps({"step": "II", "train_on": "MIX", "seed": seed, "status": status}))
        features_frame(IDS, IDS, KAPPA, ["train"] * 30, FEATURES[seed - 1]).to_parquet(run / "features.parquet")
        run_jsons.append(run / "run.json")
        features.append(run / "features.parquet")
    return write_ensemble_trust(run_jsons, features, heldout, reason, folder / "domain.parquet",
                                folder / "trust.json")


def test_log_spread_and_interval() -> None:
    kappa = np.array([[1.0, 10.0, -1.0, 2.0], [10.0, 10.0, 5.0, 2.0], [100.0, 10.0, 5.0, 2.0]])
    spread = log_spread(kappa)
    np.testing.assert_allclose(spread[:2], [1.0, 0.0])
    assert np.isclose(spread[2], 0.0)  # the unphysical member is left out, two remain
    one = log_spread(np.array([[1.0], [-2.0]]))
    assert np.isnan(one[0])  # a single physical member has no spread
    low, high = interval(np.array([10.0, -1.0]), np.array([0.5, 0.5]), 2.0)
    np.testing.assert_allclose([low[0], high[0]], [1.0, 100.0])  # ±2 × 0.5 decades: asymmetric in W/mK
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_calibrated_ensemble(tmp_path: Path) -> None:
    heldout = {"stepII/MIX": {"scale": 2.0, "domain_threshold": 1.5, "domain_note": "grows beyond 1.5",
                              "coverage_1sigma": 0.69, "coverage_2sigma": 0.9, "folds": 5, "n_usable": 80}}
    record = write_ensemble(tmp_path, heldout)
    assert record["runs"] == ["run1", "run2"]  # the diverged run is not part of the ensemble
    assert record["scale"] == 2.0 and record["calibration_note"] == "" and record["coverage_1sigma"] == 0.69
    assert list(pd.read_parquet(tmp_path / "domain.parquet").columns) == [
        "id", "formula", "kappa_wmk", "features_run1", "features_run2"]
    trust = read_trust(tmp_path, ["run1", "run2"])
    assert trust.calibrated and trust.scale == 2.0 and trust.domain_threshold == 1.5
    kappa = np.array([[1.0, 4.0, 2.0], [10.0, 4.0, 2.0]])
    query = np.stack([FEATURES[0][:3], FEATURES[1][:3]])
    query[:, 2] += 100.0  # the third material is far from every training material
    table = trust_columns(trust, kappa, query, ["", "", ""])
    assert list(table.columns) == TRUST_COLUMNS
    assert table["calibrated"].all() and (table["calibration_note"] == "").all()
    spread = np.std(np.log10([1.0, 10.0]), ddof=1)
    assert table["kappa_low_wmk"].iloc[0] == pytest.approx(5.5 * 10 ** (-2 * spread))
    assert table["kappa_high_wmk"].iloc[0] == pytest.approx(5.5 * 10 ** (2 * spread))
    assert table["nearest_id"].tolist()[:2] == ["m0", "m1"] and table["nearest_distance"].iloc[0] == pytest.approx(0)
    assert table["in_domain"].tolist() == [True, True, False]
    assert trust_warnings(trust) == []
    unseen = trust_columns(trust, kappa, query, ["", "Pu", ""])
    assert unseen["in_domain"].tolist() == [True, False, False]  # an unseen element is outside the domain


def test_uncalibrated_ensemble_says_why(tmp_path: Path) -> None:
    record = write_ensemble(tmp_path, None, reason="no held-out folds: heldout.enabled is false")
    assert record["scale"] is None and record["calibration_note"] == "no held-out folds: heldout.enabled is false"
    trust = read_trust(tmp_path, ["run1", "run2"])
    table = trust_columns(trust, np.array([[1.0], [10.0]]), FEATURES[:2, :1], [""])
    assert not table["calibrated"].iloc[0] and "heldout.enabled" in table["calibration_note"].iloc[0]
    spread = np.std(np.log10([1.0, 10.0]), ddof=1)
    assert table["kappa_high_wmk"].iloc[0] == pytest.approx(5.5 * 10 ** spread)  # the raw ±1σ
    assert bool(table["in_domain"].iloc[0])  # no threshold: only unseen elements decide
    warnings = trust_warnings(trust)
    assert len(warnings) == 2 and "not calibrated (no held-out folds" in warnings[0] and "unseen elements only" in warnings[1]


def test_folder_without_trust_files(tmp_path: Path) -> None:
    trust = read_trust(tmp_path, ["run1"])
    assert trust.reference is None and not trust.calibrated and "ensemble_trust" in trust.calibration_note
    table = trust_columns(trust, np.array([[1.0, 2.0]]), FEATURES[:1, :2], ["", ""])
    assert table["in_domain"].isna().all() and table["nearest_id"].isna().all()
    assert not table["calibrated"].any()


def test_no_usable_run_is_written_and_refused(tmp_path: Path) -> None:
    heldout = {"stepII/MIX": {"scale": 2.0, "domain_threshold": 1.5}}
    record = write_ensemble(tmp_path, heldout, statuses=("collapsed", "diverged", "diverged"))
    assert record["runs"] == [] and record["scale"] is None and record["domain_threshold"] is None
    assert record["calibration_note"] == record["domain_note"] == "no usable run: all 3 runs collapsed or diverged"
    assert pd.read_parquet(tmp_path / "domain.parquet")["id"].tolist() == IDS  # its materials, no run's features
    trust = read_trust(tmp_path, ["run1"])
    assert trust.reference is None and not trust.calibrated and "no features of run(s) run1" in trust.calibration_note
