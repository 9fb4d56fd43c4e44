"""train.smk: `snakemake -n` on config/smoke.yaml lists the expected training jobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml


def dry_run(repo_root: Path, mirror_dir: Path, workdir: Path, *overrides: Path) -> str:
    """Stdout of ``snakemake -n`` on config/smoke.yaml and these override files."""
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--directory", str(workdir),
        "--snakefile", str(repo_root / "Snakefile"),
        "--configfile", str(repo_root / "config" / "smoke.yaml"), *map(str, overrides),
        "--config", f"mirror_dir={mirror_dir}",
    ]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def job_counts(stdout: str) -> dict[str, int]:
    """``{rule: jobs}`` of a dry run's job stats."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stdout, flags=re.MULTILINE)}


def test_dry_run_lists_training_jobs(repo_root: Path, mirror_dir: Path, tmp_path: Path):
    stdout = dry_run(repo_root, mirror_dir, tmp_path)
    counts = job_counts(stdout)
    smoke = yaml.safe_load((repo_root / "config" / "smoke.yaml").read_text())["training"]
    n_seeds, n_sets = len(smoke["seeds"]), len(smoke["train_sets"])
    assert "AFLOW" not in smoke["train_sets"], "then step III would have one set fewer"
    assert smoke["stage1_epochs"] == smoke["epochs"], "then stage 1 would be a run of its own"
    assert counts["evaluate_run"] == n_seeds * 3 * n_sets
    assert counts["train"] == n_seeds * 3 * n_sets + n_seeds, "and stage 1: step II on AFLOW, each seed"
    assert "train_stage1" not in counts
    for seed in smoke["seeds"]:
        assert f"results/models/stepIII/MIX/run{seed}/predictions.parquet" in stdout
        assert f"results/models/stepII/AFLOW/run{seed}/best.ckpt" in stdout
    assert "results/models/stepIII/AFLOW" not in stdout
    assert "results/models/stage1/" not in stdout


def test_stage1_of_other_length_is_its_own_run(repo_root: Path, mirror_dir: Path, tmp_path: Path):
    """A stage 1 longer than the other steps is not step II on AFLOW: rule train_stage1 trains it."""
    override = tmp_path / "longer_stage1.yaml"
    override.write_text("training:\n  stage1_epochs: 3\n")
    stdout = dry_run(repo_root, mirror_dir, tmp_path, override)
    counts = job_counts(stdout)
    smoke = yaml.safe_load((repo_root / "config" / "smoke.yaml").read_text())["training"]
    assert counts["train_stage1"] == len(smoke["seeds"])
    assert counts["train"] == len(smoke["seeds"]) * 3 * len(smoke["train_sets"])
    assert "results/models/stepII/AFLOW" not in stdout
    for seed in smoke["seeds"]:
        assert f"results/models/stage1/aflow/run{seed}/best.ckpt" in stdout
