"""results.md: paired step comparisons, wall times and the rendered document, from synthetic result files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kappaflow.evaluation import results_doc


def per_run_frame(shift_iii: float, n_seeds: int = 9) -> pd.DataFrame:
    """Dataset1 runs: step II = I − 0.1 for every seed, step III = II + ``shift_iii`` (+ seed noise)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(1, n_seeds + 1):
        base = 0.8 + rng.normal(0, 0.05)
        for step, mape in (("I", base), ("II", base - 0.1), ("III", base - 0.1 + shift_iii + rng.normal(0, 0.002))):
            rows.append({"step": step, "train_on": "Dataset1", "run": seed, "test_on": "Dataset1", "status": "ok",
                         "mape": mape})
            rows.append({"step": step, "train_on": "Dataset1", "run": seed, "test_on": "Dataset2", "status": "ok",
                         "mape": 5.0})  # another test set: never paired
    return pd.DataFrame(rows)


def test_paired_steps_detect_a_consistent_gain_and_call_noise_noise() -> None:
    paired = results_doc.paired_steps(per_run_frame(shift_iii=0.0)).set_index(["earlier", "later"])
    gain = paired.loc[("I", "II")]
    assert gain.n_pairs == 9 and gain.n_improved == 9 and gain.median_diff == pytest.approx(-0.1)
    assert gain.p_wilcoxon < 0.01 and results_doc.verdict(gain) == "better"
    assert results_doc.verdict(paired.loc[("II", "III")]) == "no difference beyond noise"
    worse = results_doc.paired_steps(per_run_frame(shift_iii=0.05)).set_index(["earlier", "later"]).loc[("II", "III")]
    assert results_doc.verdict(worse) == "worse" and worse.n_improved == 0


def test_failed_runs_are_left_out_of_the_pairs() -> None:
    frame = per_run_frame(shift_iii=0.0)
    frame.loc[(frame.step == "III") & (frame.run == 3), "status"] = "collapsed"
    paired = results_doc.paired_steps(frame).set_index(["earlier", "later"])
    assert paired.loc[("II", "III"), "n_pairs"] == 8 and paired.loc[("I", "II"), "n_pairs"] == 9


def test_only_steps_trained_on_a_set_are_paired_and_a_set_whose_runs_all_failed_says_so() -> None:
    frame = per_run_frame(shift_iii=0.0)
    aflow = frame[frame.step != "III"].assign(train_on="AFLOW", test_on="AFLOW")  # stage 1: no step III
    failed = frame.assign(train_on="MIX", test_on="MIX")
    failed.loc[failed.step == "III", "status"] = "diverged"
    paired = results_doc.paired_steps(pd.concat([frame, aflow, failed]))
    paired = paired.set_index(["train_on", "earlier", "later"])
    assert ("AFLOW", "I", "II") in paired.index and ("AFLOW", "II", "III") not in paired.index
    assert paired.loc[("MIX", "II", "III"), "n_pairs"] == 0
    sentence = results_doc.transfer_sentence(paired.reset_index())
    assert "AFLOW" not in sentence and "MIX: no paired runs (no seed has an ok run of both steps)" in sentence
    assert "nan" not in sentence


def test_transfer_sentence_names_each_set() -> None:
    sentence = results_doc.transfer_sentence(results_doc.paired_steps(per_run_frame(shift_iii=-0.05)))
    assert sentence.startswith("Does two-stage transfer (step III) beat step II (paper protocol)? Dataset1: better (median III − II -0.050")
    assert "no difference" not in sentence
    assert "cannot be judged" in results_doc.transfer_sentence(results_doc.paired_steps(per_run_frame(0)[lambda f: f.step != "III"]))


def test_wall_times_per_rule(tmp_path: Path) -> None:
    paths = []
    for rule, name, seconds in (("train", "a", 10.0), ("train", "b", 30.0), ("evaluate_run", "a", 2.0),
                                ("heldout_run", "stepI/Dataset1/fold0/run1", 5.0)):
        path = tmp_path / "logs" / "benchmarks" / rule / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:10\t100\n")
        paths.append(path)
    table = results_doc.wall_times(paths).set_index("rule")
    assert table.loc["train"].tolist() == [2, 40.0, 20.0, 30.0] and table.loc["evaluate_run", "jobs"] == 1
    assert list(table.index) == ["evaluate_run", "heldout_run", "train"]


def test_render_reads_every_number_from_its_inputs(tmp_path: Path) -> None:
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"kappaflow": {"version": "0.1.0", "commit": "abc123", "dirty": False}}))
    bench = tmp_path / "logs" / "benchmarks" / "train" / "x.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\n12.5\t0:00:12\n")
    runs = pd.DataFrame({"step": ["I", "II"], "train_on": ["Dataset1"] * 2, "status": ["ok", "diverged"]})
    text = results_doc.render({"training": {"seeds": [1, 2]}}, {"mape_table": "| MAPE TABLE |", "vs_published": "| VS |"},
                              per_run_frame(0.0), runs, [run_json], [bench])
    assert text.index("## Configuration") < text.index("seeds:") < text.index("## MAPE on κ")
    assert "kappaflow 0.1.0 commit abc123" in text and "| MAPE TABLE |" in text and "| VS |" in text
    assert "held-out protocol is disabled" in text and "| train | 1 | 12.5 |" in text
    assert "| step | train_on | diverged | ok |\n| --- | --- | --- | --- |\n| I | Dataset1 | 0 | 1 |\n| II | Dataset1 | 1 | 0 |" in text
    assert not math.isnan(results_doc.paired_steps(per_run_frame(0.0)).p_wilcoxon.iloc[0])


def test_render_with_heldout_folds(tmp_path: Path) -> None:
    """The held-out table, its own paired comparison (runs paired by fold and seed) and the calibration table."""
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"kappaflow": {"version": "0.1.0", "commit": "abc123"}}))
    runs = pd.DataFrame({"step": ["I"], "train_on": ["Dataset1"], "status": ["ok"]})
    heldout = per_run_frame(shift_iii=-0.05).assign(run=lambda f: "fold" + (f["run"] % 3).astype(str) + "_run" + (
        f["run"] // 3).astype(str))
    tables = {"mape_table": "| M |", "vs_published": "| V |", "heldout_table": "## Held-out evaluation\n\n| H |",
              "calibration": "## Calibration of the ensemble spread (held-out folds)\n\n| C |"}
    text = results_doc.render({}, tables, per_run_frame(0.0), runs, [run_json], [], heldout)
    assert "### Held-out evaluation" in text and "### Calibration of the ensemble spread" in text
    assert "Does two-stage transfer (step III) beat step II (held-out protocol)? Dataset1: better" in text
    assert text.index("| H |") < text.index("(held-out protocol)?") < text.index("| C |") < text.index("## Paired step")


def test_the_document_shows_fine_tuned_backbones_without_frozen_ones(
    repo_root: Path, mirror_dir: Path, tmp_path: Path
) -> None:
    """A run that fine-tunes another backbone but computes no frozen representation still builds the backbone
    comparison, and results.md reads it (``snakemake -n`` lists the job and the document's input)."""
    import subprocess
    import sys

    override = tmp_path / "override.yaml"
    override.write_text("model: {frozen: {enabled: false}, finetune: {backbones: [m3gnet-2018-eform]}}\n")
    command = [
        sys.executable, "-m", "snakemake", "-n", "results/docs/results.md", "--directory", str(tmp_path / "run"),
        "--snakefile", str(repo_root / "Snakefile"),
        "--configfile", str(repo_root / "config" / "smoke.yaml"), str(override), "--config", f"mirror_dir={mirror_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule backbone_comparison:" in result.stdout and "rule represent:" not in result.stdout
