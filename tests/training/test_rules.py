"""train.smk: `snakemake -n` on config/smoke.yaml lists the expected training jobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml


def test_dry_run_lists_training_jobs(repo_root: Path, mirror_dir: Path, tmp_path: Path):
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--directory", str(tmp_path),
        "--snakefile", str(repo_root / "Snakefile"), "--configfile", str(repo_root / "config" / "smoke.yaml"),
        "--config", f"mirror_dir={mirror_dir}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    smoke = yaml.safe_load((repo_root / "config" / "smoke.yaml").read_text())["training"]
    n_seeds, n_sets = len(smoke["seeds"]), len(smoke["train_sets"])
    assert "AFLOW" not in smoke["train_sets"], "then step III would have one set fewer"
    assert int(counts["train"]) == int(counts["evaluate_run"]) == n_seeds * 3 * n_sets
    assert int(counts["train_stage1"]) == n_seeds
    for seed in smoke["seeds"]:
        assert f"results/models/stepIII/MIX/run{seed}/predictions.parquet" in result.stdout
        assert f"results/models/stage1/aflow/run{seed}/best.ckpt" in result.stdout
    assert "results/models/stepIII/AFLOW" not in result.stdout
