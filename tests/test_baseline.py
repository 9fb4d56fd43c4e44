from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kappaflow.baseline import (
    FEATURE_NAMES,
    composition_features,
    featurize,
    fit_predict,
    forest,
    paper_protocol_predictions,
    timed_fit_predict,
)
from kappaflow.training.splits import split_indices
from pymatgen.core import Structure


@pytest.fixture(scope="module")
def mirror_materials(mirror_dir: Path) -> pd.DataFrame:
    """A few Dataset1 materials with their real MP structures from the mirror."""
    labels = pd.read_csv(mirror_dir / "hq" / "dataset1.csv").head(24)
    rows = []
    for row in labels.itertuples(index=False):
        path = mirror_dir / "mp" / "structures" / f"{row.mp_id}.json"
        if path.is_file():
            structure = Structure.from_dict(json.loads(path.read_text()))
            rows.append({"id": row.mp_id, "formula": structure.composition.reduced_formula, "target": row.ltc_wmk})
    return pd.DataFrame(rows)


def test_features_by_hand() -> None:
    names = list(FEATURE_NAMES)
    nacl = composition_features("NaCl")
    assert nacl[names.index("mean_Z")] == pytest.approx((11 + 17) / 2)
    assert nacl[names.index("min_Z")] == 11 and nacl[names.index("max_Z")] == 17
    assert nacl[names.index("std_Z")] == pytest.approx(3.0)
    assert nacl[names.index("n_elements")] == 2
    # composition weights: Al2O3 → mean Z = (2·13 + 3·8) / 5 = 10
    assert composition_features("Al2O3")[names.index("mean_Z")] == pytest.approx(10.0)
    assert composition_features("Si")[names.index("std_X")] == 0.0


def test_featurize_mirror_structures(mirror_materials: pd.DataFrame) -> None:
    features = featurize(mirror_materials["formula"])
    assert features.shape == (len(mirror_materials), len(FEATURE_NAMES))
    assert np.isfinite(features[["mean_Z", "mean_atomic_mass", "max_X"]].to_numpy()).all()


def test_fit_predict_mirror(mirror_materials: pd.DataFrame) -> None:
    train, test = mirror_materials.iloc[:18], mirror_materials.iloc[18:]
    pred = fit_predict(train["formula"], train["target"], test["formula"], 0, 20, 1, 1)
    assert pred.shape == (len(test),) and (pred > 0).all() and np.isfinite(pred).all()
    again = fit_predict(train["formula"], train["target"], test["formula"], 0, 20, 1, 1)
    np.testing.assert_array_equal(pred, again)


def test_fit_predict_rejects_bad_targets() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit_predict(["NaCl"], [1.0], ["KCl"], 0, 10, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        fit_predict(["NaCl", "KCl"], [1.0, 0.0], ["KBr"], 0, 10, 1, 1)


def test_paper_protocol_uses_the_network_split(mirror_materials: pd.DataFrame) -> None:
    materials = {"dataset1": mirror_materials, "dataset2": mirror_materials.assign(id="x" + mirror_materials["id"])}
    out = paper_protocol_predictions(materials, ["Dataset1"], ["Dataset1", "MIX"], seeds=[3], val_fraction=0.25,
                                     fit_predict=forest(10, 1, 1), step="RF")
    assert set(out["step"]) == {"RF"} and set(out["status"]) == {"ok"}
    _, val = split_indices(mirror_materials["id"].to_numpy(dtype=object), 3, 0.25)
    d1 = out[out["test_on"] == "Dataset1"]
    assert sorted(d1["id"]) == sorted(mirror_materials["id"].iloc[val])
    assert len(out[out["test_on"] == "MIX"]) == 2 * len(val)
    assert list(out.columns) == ["step", "train_on", "run", "test_on", "id", "formula", "kappa_true", "kappa_pred",
                                 "status", "fit_s"]
    assert (out["fit_s"] > 0).all()


def forest_per_test_set(materials: dict[str, pd.DataFrame], train_on: str, test_sets: list[str], seed: int,
                        val_fraction: float) -> pd.DataFrame:
    """The forest's paper protocol before the refactoring: one forest per (seed, train set, test set)."""
    from kappaflow.baseline import _set_part

    train = _set_part(materials, train_on, seed, val_fraction, 0)
    frames = []
    for test_on in test_sets:
        test = _set_part(materials, test_on, seed, val_fraction, 1)
        kappa = fit_predict(train["formula"], train["target"], test["formula"], seed, 10, 1, 1)
        frames.append(pd.DataFrame({"test_on": test_on, "id": test["id"], "kappa_pred": kappa}))
    return pd.concat(frames, ignore_index=True)


def test_forest_predictions_unchanged(mirror_materials: pd.DataFrame) -> None:
    twin = mirror_materials.assign(id="x" + mirror_materials["id"])
    materials = {"dataset1": mirror_materials, "dataset2": twin}
    test_sets = ["Dataset1", "Dataset2", "MIX"]
    out = paper_protocol_predictions(materials, ["Dataset1", "MIX"], test_sets, seeds=[1, 4],
                                     val_fraction=0.25, fit_predict=forest(10, 1, 1), step="RF")
    for (seed, train_on), rows in out.groupby(["run", "train_on"]):
        assert rows["fit_s"].nunique() == 1  # one forest per run and training set, for every test set
        before = forest_per_test_set(materials, train_on, test_sets, seed, 0.25)
        assert rows[["test_on", "id"]].values.tolist() == before[["test_on", "id"]].values.tolist()
        np.testing.assert_allclose(rows["kappa_pred"], before["kappa_pred"], rtol=1e-12)


def test_regressor_must_predict_every_test_row(mirror_materials: pd.DataFrame) -> None:
    train, test = mirror_materials.iloc[:18], mirror_materials.iloc[18:]
    kappa, seconds = timed_fit_predict(forest(5, 1, 1), train, test, 0)
    assert kappa.shape == (len(test),) and seconds > 0
    with pytest.raises(ValueError, match="predictions for"):
        timed_fit_predict(lambda train, test, seed: np.ones(len(test) - 1), train, test, 0)
