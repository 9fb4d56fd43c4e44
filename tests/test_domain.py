from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kappaflow.domain import (
    DOMAIN_COLUMNS,
    build_reference,
    domain_frame,
    embed,
    features_frame,
    nearest,
    reference_of,
)

RNG = np.random.default_rng(0)
IDS = [f"m{i}" for i in range(40)]
FORMULAS = [f"X{i}" for i in range(40)]
KAPPA = RNG.uniform(0.5, 50, 40)
FEATURES = RNG.normal(size=(3, 40, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0])  # 3 members, 5 features each


def test_training_material_is_at_distance_zero_from_itself() -> None:
    reference = build_reference(IDS, FORMULAS, KAPPA, FEATURES)
    found = nearest(reference, FEATURES)
    assert list(found.columns) == DOMAIN_COLUMNS
    assert found["nearest_id"].tolist() == IDS
    assert found["nearest_formula"].tolist() == FORMULAS
    np.testing.assert_allclose(found["nearest_kappa_wmk"], KAPPA)
    np.testing.assert_allclose(found["nearest_distance"], 0.0, atol=1e-12)


def test_distance_is_in_units_of_the_training_spacing() -> None:
    reference = build_reference(IDS, FORMULAS, KAPPA, FEATURES)
    points = embed(FEATURES, reference.center, reference.spread)
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.diag(np.full(40, np.inf))
    assert reference.spacing == pytest.approx(np.median(gaps.min(axis=1)))
    far = FEATURES[:, :1] + 50 * FEATURES.std(axis=1, keepdims=True)  # far outside every training material
    assert nearest(reference, far)["nearest_distance"].iloc[0] > 10
    # scaling one member's features (training and query alike) changes nothing: each member is standardised
    query = FEATURES[:, :5] + 0.3
    member_scale = np.array([1.0, 1000.0, 1.0]).reshape(3, 1, 1)
    rescaled = nearest(build_reference(IDS, FORMULAS, KAPPA, FEATURES * member_scale), query * member_scale)
    np.testing.assert_allclose(rescaled["nearest_distance"], nearest(reference, query)["nearest_distance"], rtol=1e-9)


def test_reference_needs_a_spacing() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        build_reference(IDS[:1], FORMULAS[:1], KAPPA[:1], FEATURES[:, :1])
    with pytest.raises(ValueError, match="share one point"):
        build_reference(IDS[:3], FORMULAS[:3], KAPPA[:3], np.zeros((2, 3, 4)))


def test_domain_frame_round_trip(tmp_path) -> None:
    files = {}
    for i, run in enumerate(("run1", "run2", "run3")):
        files[run] = tmp_path / f"{run}.parquet"
        features_frame(IDS, FORMULAS, KAPPA, ["train"] * 40, FEATURES[i]).to_parquet(files[run])
    domain = domain_frame(files)
    domain.to_parquet(tmp_path / "domain.parquet")
    again = pd.read_parquet(tmp_path / "domain.parquet")
    reference = reference_of(again, ["run1", "run2", "run3"])
    np.testing.assert_allclose(nearest(reference, FEATURES)["nearest_distance"], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="run9"):
        reference_of(again, ["run1", "run9"])
    # a run whose split ordered the materials otherwise is aligned by id
    reordered = features_frame(IDS[::-1], FORMULAS[::-1], KAPPA[::-1], ["train"] * 40, FEATURES[1][::-1])
    aligned = domain_frame({"run1": files["run1"], "run2": reordered})
    assert aligned["id"].tolist() == IDS
    np.testing.assert_array_equal(np.stack(aligned["features_run2"].to_numpy()), FEATURES[1])
    other = features_frame(IDS[1:], FORMULAS[1:], KAPPA[1:], ["train"] * 39, FEATURES[0][1:])
    with pytest.raises(ValueError, match="other materials"):
        domain_frame({"run1": files["run1"], "run2": other})
