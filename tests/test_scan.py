"""The low-κL scan: screening query, chunks, rows in = predicted + rejected, candidates, the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from _tiny_ensemble import tiny_trusted_models
from kappaflow import scan
from kappaflow.sources.http import HttpSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SETS = ("Dataset1", "Dataset2", "MIX")
KEY = "k" * 32  # mp-api accepts 32-character keys only


#: Held-out calibration given to the tiny ensembles (their domain threshold is generous: unseen elements decide).
CALIBRATION = {"scale": 1.5, "domain_threshold": 100.0, "domain_note": "test"}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_trusted_models(tmp_path_factory.mktemp("tiny"), CALIBRATION)


def test_screening_query_kwargs() -> None:
    kwargs = scan.screening_query_kwargs({"is_stable": True, "energy_above_hull_max": 0.05, "nsites_max": 40,
                                          "exclude_elements": ["Pu"]})
    assert kwargs == {"fields": ["material_id", "formula_pretty"], "is_stable": True,
                      "energy_above_hull": (0.0, 0.05), "num_sites": (1, 40), "exclude_elements": ["Pu"]}
    assert scan.screening_query_kwargs({"is_stable": None, "nsites_max": None}) == {"fields": ["material_id", "formula_pretty"]}


@pytest.mark.network
def test_online_screening_query_against_a_fake_server(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "sources"))
    from fake_servers import mp_server

    docs = [{"material_id": "mp-20", "formula_pretty": "B", "nsites": 12}, {"material_id": "mp-3", "formula_pretty": "A", "nsites": 2},
            {"material_id": "mp-100", "formula_pretty": "C", "nsites": 80}]
    server = mp_server(KEY)

    def summary(query: str, headers: dict[str, str]) -> tuple[int, bytes]:
        params = {key: values[0] for key, values in parse_qs(query).items()}
        assert params["is_stable"] == "True" and float(params["energy_above_hull_max"]) == 0.0
        keep = [d for d in docs if d["nsites"] <= int(params["nsites_max"])]
        body = [{k: d[k] for k in params["_fields"].split(",")} for d in keep]
        return 200, json.dumps({"data": body, "meta": {"total_doc": len(body), "max_limit": 1000}}).encode()

    server.routes["/materials/summary/"] = summary
    monkeypatch.setenv("MP_API_KEY", KEY)
    with server:
        table = scan.query_screening_set(server.url, HttpSettings(timeout_s=5, retries=0),
                                         {"is_stable": True, "energy_above_hull_max": 0.0, "nsites_max": 40})
    assert list(table["mp_id"]) == ["mp-3", "mp-20"] and list(table["formula"]) == ["A", "B"]


def test_candidates_lowest_mean_among_confident() -> None:
    predictions = pd.DataFrame({
        "mp_id": ["e", "a", "b", "c", "d", "a", "b"], "formula": ["E", "A", "B", "C", "D", "A", "B"],
        "model": ["m1"] * 5 + ["m2"] * 2,
        "pred_mean_wmk": [0.2, 0.5, 1.0, 2.0, 0.1, 3.0, 1.0], "pred_std_wmk": [0.01, 0.1, 0.2, 0.2, 0.5, 0.3, np.nan],
        "unphysical": [True, False, False, False, False, False, False],  # e: some model predicts κ ≤ 0
        "in_domain": [True, True, True, True, True, False, True],  # m2's a: outside its domain
    })
    picked = scan.select_candidates(predictions, n_candidates=2, max_rel_std=0.25)
    assert list(zip(picked["model"], picked["mp_id"], picked["rank"]))[:2] == [("m1", "a", 1), ("m1", "b", 2)]
    assert picked["note"].iloc[:2].eq("").all()
    assert picked["model"].iloc[2] == "m2" and pd.isna(picked["rank"].iloc[2])  # its a is out of domain, b uncertain
    assert "1 lie outside the ensemble's domain" in picked["note"].iloc[2] and len(picked) == 3


def test_an_ensemble_without_candidates_says_why() -> None:
    predictions = pd.DataFrame({
        "mp_id": ["a", "b", "c", "a", "b", "c"], "formula": ["A", "B", "C"] * 2, "model": ["m1"] * 3 + ["m2"] * 3,
        "pred_mean_wmk": [0.5, 1.0, 2.0, 0.4, -0.2, 2.0], "pred_std_wmk": [0.1, 0.2, 0.2, 0.3, 0.5, 1.0],
        "unphysical": [False, False, False, False, True, False],
        "in_domain": ["True", "True", "True", "True", "True", ""],  # as read back from the CSV: "" is unknown
    })
    picked = scan.select_candidates(predictions, n_candidates=2, max_rel_std=0.25)
    assert list(picked["model"]) == ["m1", "m1", "m2"] and pd.isna(picked["rank"].iloc[2])
    assert picked["note"].iloc[2] == (
        "no candidate: of 3 materials, 1 have an unphysical prediction (κ ≤ 0), 1 lie outside the ensemble's domain "
        "(unseen elements or beyond its distance threshold) and 1 have a relative std above max_rel_std 0.25 or "
        "undefined (lowest 0.75)")


def test_excluded_elements_are_quarantined_with_their_reason(mirror_dir: Path) -> None:
    from kappaflow.validation import Limits

    rows = pd.DataFrame({"mp_id": ["mp-861724", "mp-1000"]})  # Ac2AgIr, BaTe
    structures = {mp_id: (mirror_dir / "mp" / "structures" / f"{mp_id}.json").read_text() for mp_id in rows.mp_id}
    records, rejected = scan.chunk_records(rows, structures, Limits(min_distance=0.5, cutoff=4.0), ["Ac", "Pu"])
    assert [record["id"] for record in records] == ["mp-1000"]
    assert rejected == [{"mp_id": "mp-861724", "reason": "excluded element(s) Ac (scan.exclude_elements)"}]


def test_chunks_predict_and_reject_every_row(models: Path, tmp_path: Path, mirror_dir: Path) -> None:
    screening = tmp_path / "screening_set.csv"
    n = scan.write_screening_set(screening, "mirror", mirror_dir / "mp" / "screening_set.csv", limit=12)
    rows = pd.read_csv(screening)
    rows.loc[len(rows)] = ["mp-99999999", "X"]  # not in the mirror: rejected, not lost
    rows.to_csv(screening, index=False)
    model_dirs = {f"stepIII/{name}": models / "stepIII" / name for name in TRAIN_SETS}
    parts = []
    for chunk in range(scan.n_chunks(n + 1, 5)):
        parts.append((tmp_path / f"{chunk}.parquet", tmp_path / f"{chunk}.rejected.csv"))
        scan.scan_chunk(screening, chunk, 5, model_dirs, *parts[-1], mirror_structures=mirror_dir / "mp" / "structures")
    assert len(parts) == 3
    out = {name: tmp_path / f"{name}.csv" for name in ("predictions", "rejected", "candidates")}
    counts = scan.gather_scan(screening, [p for p, _ in parts], [r for _, r in parts], out["predictions"],
                              out["rejected"])
    scan.write_candidates(out["predictions"], out["candidates"], n_candidates=3, max_rel_std=1.0)
    assert counts["rows_in"] == 13 == counts["predicted"] + counts["rejected"]
    rejected = pd.read_csv(out["rejected"]).set_index("mp_id")["reason"]
    assert "not found" in rejected["mp-99999999"] and "isolated atom" in rejected["mp-862690"]
    predictions = pd.read_csv(out["predictions"])
    assert list(predictions.columns) == scan.GATHERED_COLUMNS
    assert len(predictions) == 3 * counts["predicted"] and set(predictions["model"]) == set(model_dirs)
    assert predictions["nearest_id"].notna().all() and predictions["calibrated"].all()
    assert (predictions["kappa_low_wmk"] <= predictions["pred_mean_wmk"]).all()
    # in the domain exactly when every element was learned (the threshold is generous)
    assert (predictions["in_domain"] == predictions["unseen_elements"].isna()).all()
    means = predictions.groupby("mp_id")["pred_mean_wmk"]
    np.testing.assert_allclose(predictions["ensembles_rel_spread"],
                               predictions["mp_id"].map(means.std() / means.mean()))
    candidates = pd.read_csv(out["candidates"])
    ranked = candidates.dropna(subset=["rank"])
    inside = set(predictions.loc[predictions["in_domain"], "mp_id"])
    assert set(ranked["mp_id"]) <= inside and (ranked.groupby("model")["pred_mean_wmk"].diff().dropna() >= 0).all()
    for note in candidates.loc[candidates["rank"].isna(), "note"]:
        assert "outside the ensemble's domain" in note
    with pytest.raises(RuntimeError, match="rows in"):
        scan.gather_scan(screening, [parts[0][0]], [parts[0][1]], out["predictions"], out["rejected"])
    paths = scan.scan_figure(out["predictions"], out["candidates"], 1.0, tmp_path / "fig" / "scan_low_kappa.png")
    assert all(path.stat().st_size > 0 for path in paths)


@pytest.mark.slow
def test_scan_rules_in_the_smoke_dag(models: Path, tmp_path: Path, mirror_dir: Path) -> None:
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    (work / "results" / "models").symlink_to(models, target_is_directory=True)
    extra = tmp_path / "extra.yaml"
    extra.write_text("training:\n  seeds: [1, 2, 3]\nscan:\n  limit: 12\n  chunk_size: 5\n")
    command = [sys.executable, "-m", "snakemake", "--directory", str(work), "--snakefile", str(REPO_ROOT / "Snakefile"),
               "--configfile", str(REPO_ROOT / "config" / "smoke.yaml"), str(extra), "--config", f"mirror_dir={mirror_dir}",
               "--cores", "2", "--allowed-rules", "scan_screening_set", "scan_chunk", "scan_gather", "scan_candidates",
               "scan_figure",
               "--", "results/scan/low_kappa_candidates.csv", "results/figures/scan_low_kappa.png"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (work / "results" / "scan" / "chunks").iterdir()) == sorted(
        f"{i}.{ext}" for i in range(3) for ext in ("parquet", "rejected.csv"))
    predicted = pd.read_csv(work / "results" / "scan" / "screening_predictions.csv")["mp_id"].nunique()
    rejected = len(pd.read_csv(work / "results" / "scan" / "rejected.csv"))
    assert predicted + rejected == 12
    assert (work / "logs" / "benchmarks" / "scan_chunk" / "0.tsv").is_file()
    assert (work / "results" / "figures" / "scan_low_kappa.pdf").is_file()
