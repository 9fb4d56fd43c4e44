"""The SLURM profiles: consistent with the workflow's rules, and every kind of job of the smoke DAG run
through a real single-node SLURM cluster with accounting (.ci/slurm/up.sh), compared with the local run.

The cluster needs root and Debian's packages (.ci/install-system-packages.sh, installed here when
missing); the test skips only where it cannot be root or has no apt-get. Every SLURM command runs
under `timeout -k 10`: without accounting the plugin's sacct status check fails silently and
Snakemake would wait forever.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_DIR = REPO_ROOT / "profiles" / "slurm"
TEST_PROFILE_DIR = REPO_ROOT / "profiles" / "slurm-test"
CLUSTER_SCRIPTS = REPO_ROOT / ".ci" / "slurm"
SLURM_DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sinfo", "sacct", "sbatch")
SLURM_RUN_TIMEOUT_S = 2400
# Written by data preparation alone (no floating-point training): must match the local run exactly.
EXACT_DIRS = ("results/data", "results/matching", "results/graphs")
# Written by training and evaluation: same code, seeds and CPU, but float reductions may be ordered
# differently by the BLAS threads of another process, so values are compared to a tolerance.
RTOL, ATOL = 1e-4, 1e-6
# Keys of run.json and columns of tables that measure time, not results (run time, frozen-regression fit
# time, representation throughput).
TIMING_KEYS = {"wall_s", "fit_s", "fit_s_median", "structures_per_s", "throughput_ratio"}
# Sizes of files holding floats written as text or compressed (the shipped model's check.csv, domain.parquet):
# the last digit of a float changes a size by a byte or two, so sizes are compared as numbers within RTOL.
SIZE_KEYS = {"size_bytes"}
# Made after the run by `snakemake --report` (tests/test_report.py), not by the DAG.
NOT_COMPARED = {"results/report.html"}
#: What the SLURM run builds: the smoke DAG's jobs of every kind (local downloads, data preparation on all
#: sets, graphs, MEGNet's stage 1 and a step-III run from it, evaluation on every test set, a second
#: backbone's fine-tuning) without the whole DAG a second time, which the local smoke run already proves.
SLURM_TARGETS = (
    "results/models/stepIII/Dataset1/run1/predictions.parquet",
    "results/finetuned/m3gnet-2018-eform/stepII/Dataset1/run1/predictions.parquet",
)


def run(*cmd: str, timeout_s: int = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command bounded by `timeout -k 10`; a failure or timeout fails the test with its output."""
    full = ["timeout", "-k", "10", str(timeout_s), *cmd]
    proc = subprocess.run(
        full, check=False, cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        why = "timed out" if proc.returncode in (124, 137) else f"exited {proc.returncode}"
        pytest.fail(f"{shlex.join(full)} {why}:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


def load_profile(directory: Path) -> dict:
    return yaml.safe_load((directory / "config.yaml").read_text())


def gpu_of(rule, profile: dict) -> int:
    """The GPUs a rule asks for under a profile: the profile's set-resources, else the rule's own."""
    value = profile.get("set-resources", {}).get(rule.name, {}).get("gpu", rule.resources.get("gpu", 0))
    return int(value or 0)


def trains(rule) -> bool:
    """Training and screening rules: the PyTorch env, in train.smk or scan.smk, or a declared GPU."""
    in_module = rule.snakefile.name in ("train.smk", "scan.smk")
    uses_torch = rule.conda_env is not None and rule.conda_env.name == "train.yaml"
    return (in_module and uses_torch) or bool(rule.resources.get("gpu"))


# --- the profiles (fast) ---


@pytest.mark.parametrize("directory", [PROFILE_DIR, TEST_PROFILE_DIR], ids=lambda d: d.name)
def test_profile_uses_the_slurm_executor(directory: Path) -> None:
    profile = load_profile(directory)
    assert profile["executor"] == "slurm"
    defaults = profile["default-resources"]
    assert {"slurm_partition", "runtime", "mem_mb", "cpus_per_task"} <= set(defaults)
    assert isinstance(defaults["runtime"], int) and isinstance(defaults["mem_mb"], int)


def test_test_profile_asks_for_no_gpu_account_or_long_wait(workflow_rules) -> None:
    profile = load_profile(TEST_PROFILE_DIR)
    assert "slurm_account" not in profile["default-resources"]
    assert profile["slurm-init-seconds-before-status-checks"] <= 5
    assert profile["slurm-status-command"] == "sacct", "the test must exercise sacct, as on real clusters"
    asking = [rule.name for rule in workflow_rules.values() if gpu_of(rule, profile)]
    assert not asking, f"the CI node has no GPU, yet these rules ask for one: {asking}"


def test_training_and_scan_rules_ask_for_one_gpu(workflow_rules) -> None:
    profile = load_profile(PROFILE_DIR)
    training = [rule for rule in workflow_rules.values() if trains(rule)]
    assert training, "no training rule found"
    wrong = {rule.name: gpu_of(rule, profile) for rule in training if gpu_of(rule, profile) != 1}
    assert not wrong, f"training/scan rules must ask for exactly one GPU: {wrong}"


@pytest.mark.parametrize("directory", [PROFILE_DIR, TEST_PROFILE_DIR], ids=lambda d: d.name)
def test_set_resources_name_existing_rules(directory: Path, workflow_rules) -> None:
    unknown = set(load_profile(directory).get("set-resources", {})) - set(workflow_rules)
    assert not unknown, f"{directory.name}: set-resources for rules that do not exist: {sorted(unknown)}"


def test_test_profile_follows_the_real_one() -> None:
    """Same rules tuned, same resource names apart from the GPU ones."""
    real, test = load_profile(PROFILE_DIR), load_profile(TEST_PROFILE_DIR)
    gpu_keys = {"gpu", "gpu_model", "gres", "cpus_per_gpu", "slurm_account"}
    assert set(real["default-resources"]) - gpu_keys == set(test["default-resources"]) - gpu_keys
    real_rules = {name for name, res in real.get("set-resources", {}).items() if set(res) - gpu_keys}
    assert real_rules <= set(test.get("set-resources", {}))


def test_download_rules_run_locally(workflow_rules) -> None:
    """Compute nodes are often offline: everything in data.smk runs where Snakemake runs."""
    downloads = [rule for rule in workflow_rules.values() if rule.snakefile.name == "data.smk"]
    assert downloads
    remote = [rule.name for rule in downloads if not rule.local]
    assert not remote, f"download rules without `localrule: True`: {remote}"


# --- a real SLURM cluster (slow) ---


@pytest.fixture(scope="module")
def slurm_cluster():
    """A single-node SLURM cluster with accounting, up for this module and stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("starting SLURM needs root")
    if shutil.which("apt-get") is None:
        pytest.skip("installing SLURM needs apt-get")
    if any(shutil.which(cmd) is None for cmd in SLURM_DAEMONS):
        run("bash", str(REPO_ROOT / ".ci" / "install-system-packages.sh"), timeout_s=1500)
    try:
        run("bash", str(CLUSTER_SCRIPTS / "up.sh"), timeout_s=180)
        yield
    finally:
        run("bash", str(CLUSTER_SCRIPTS / "down.sh"), timeout_s=180, check=False)


def sacct_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """JobID -> (State, ExitCode) of the allocations, as accounting (slurmdbd) has them."""
    out = run("sacct", "-n", "-X", "-P", "-o", "JobIDRaw,State,ExitCode", "-j", ",".join(job_ids)).stdout
    states = {}
    for line in out.splitlines():
        job, state, exit_code = line.split("|")
        states[job] = (state, exit_code)
    return states


def results_files(workdir: Path) -> set[str]:
    files = {
        str(p.relative_to(workdir))
        for p in (workdir / "results").rglob("*")
        if p.is_file() and p.name != ".snakemake_timestamp"  # Snakemake's marker in a directory() output
    }
    return files - NOT_COMPARED


def assert_frames_close(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    a, b = a.drop(columns=TIMING_KEYS, errors="ignore"), b.drop(columns=TIMING_KEYS, errors="ignore")
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=RTOL, atol=ATOL)
    except AssertionError as err:
        raise AssertionError(f"{what} differs from the local run: {err}") from None


def assert_json_close(a: object, b: object, what: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{what}: keys differ: {set(a) ^ set(b)}"
        for key in set(a) - TIMING_KEYS:
            assert_json_close(a[key], b[key], f"{what}.{key}")
    elif isinstance(a, float) or isinstance(b, float) or what.rpartition(".")[2] in SIZE_KEYS:
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), f"{what}: {a} != {b}"
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


def assert_same_results(local: Path, slurm: Path) -> int:
    """Every results/ file of the SLURM run equals the local run's; returns how many were compared."""
    files = results_files(slurm)
    assert files <= results_files(local), f"outputs the local run lacks: {sorted(files - results_files(local))}"
    compared = 0
    for rel in sorted(files):
        a, b = local / rel, slurm / rel
        if rel.startswith(EXACT_DIRS):
            if a.suffix == ".parquet":
                assert pq.read_table(a).equals(pq.read_table(b)), f"{rel} differs from the local run"
            else:
                assert a.read_bytes() == b.read_bytes(), f"{rel} differs from the local run"
        elif a.suffix == ".parquet":
            assert_frames_close(pd.read_parquet(a), pd.read_parquet(b), rel)
        elif a.suffix in (".csv", ".tsv"):
            sep = "\t" if a.suffix == ".tsv" else ","
            assert_frames_close(pd.read_csv(a, sep=sep), pd.read_csv(b, sep=sep), rel)
        elif a.suffix == ".json":
            assert_json_close(json.loads(a.read_text()), json.loads(b.read_text()), rel)
        else:  # checkpoints, figures, HTML: binary with timestamps or float noise; present and non-empty
            assert b.stat().st_size > 0, f"{rel} is empty"
            continue
        compared += 1
    return compared


@pytest.mark.slow
def test_smoke_jobs_run_under_slurm(
    slurm_cluster, smoke_run: Path, smoke_snakemake, workflow_rules, tmp_path
):
    workdir = tmp_path / "slurm_run"
    started = time.monotonic()
    # targets after --profile: right after --configfile they would be read as more config files
    out = smoke_snakemake(workdir, "--profile", str(TEST_PROFILE_DIR), *SLURM_TARGETS, timeout_s=SLURM_RUN_TIMEOUT_S)
    print(f"smoke jobs under SLURM: {time.monotonic() - started:.0f} s")

    # Every job that did not run on the submit host went through sbatch, and its SLURM log is kept.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", out)
    ran = re.findall(r"^\[.*\]\n(local)?(?:rule|checkpoint) (\w+):$", out, flags=re.MULTILINE)
    remote_rules = [name for local, name in ran if not local]
    local_rules = {name for local, name in ran if local}
    assert submitted, f"no job was submitted to SLURM:\n{out[-3000:]}"
    assert len(submitted) == len(remote_rules), (
        f"{len(remote_rules)} jobs ran remotely, {len(submitted)} submitted"
    )
    assert local_rules <= {r.name for r in workflow_rules.values() if r.local} | {"all"}
    kinds = {"aflow_agl", "mp_structures", "validate", "featurize", "train", "evaluate_run",
             "finetune_backbone"}  # fmt: skip
    assert kinds <= {*remote_rules, *local_rules}, f"kinds of job not run: {sorted(kinds - {*remote_rules, *local_rules})}"
    assert all((workdir / target).is_file() for target in SLURM_TARGETS)
    for _, _, log in submitted:
        assert Path(log).is_file(), f"SLURM log {log} missing"
    main_log = max((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    slurm_ids = [job_id for _, job_id, _ in submitted]
    assert all(f"SLURM jobid {job_id} " in main_log.read_text() for job_id in slurm_ids)

    # Accounting saw every job finish; slurmdbd may lag slurmctld by a moment.
    deadline = time.monotonic() + 60
    while True:
        states = sacct_states(slurm_ids)
        if set(states) == set(slurm_ids) and all(s == ("COMPLETED", "0:0") for s in states.values()):
            break
        if time.monotonic() > deadline:
            bad = {job: states.get(job) for job in slurm_ids if states.get(job) != ("COMPLETED", "0:0")}
            pytest.fail(f"sacct does not show every job COMPLETED with exit 0:0: {bad}")
        time.sleep(2)

    assert assert_same_results(smoke_run, workdir) > 0
