"""Shared fixtures: the repository, the offline mirror, the pretrained model folder, the workflow's
rules and one smoke run of the whole DAG."""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = (REPO_ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    if not (MIRROR_DIR / "README.md").is_file():
        pytest.fail(f"the offline data mirror is expected at {MIRROR_DIR}")
    return MIRROR_DIR


@pytest.fixture(scope="session")
def pretrained_dir(mirror_dir: Path) -> Path:
    return mirror_dir / "pretrained" / "MEGNet-MP-2018.6.1-Eform"


# --- the workflow as a whole: its rules, and one smoke run shared by the end-to-end tests ---

SMOKE_CONFIG = REPO_ROOT / "config" / "smoke.yaml"
SMOKE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RuleInfo:
    """What the tests need to know about one rule of the workflow."""

    name: str
    conda_env: Path | None
    script: Path | None
    action: str | None  # script, shell, notebook, wrapper, run or None (no action, e.g. rule all)
    local: bool
    snakefile: Path  # where the rule is defined
    resources: dict[str, object]  # the rule's own constant resources (gpu=1, ...), not the profile's
    log: list[str]  # the rule's log: patterns
    benchmark: str | None  # its benchmark: pattern


def snakemake_command(
    workdir: Path, *args: str, timeout_s: int = SMOKE_TIMEOUT_S, mirror: Path = MIRROR_DIR
) -> list[str]:
    """`snakemake` on the smoke configuration and ``mirror`` in `workdir`, bounded by `timeout -k 10`.

    Extra config files go before the other ``args`` (``--configfile smoke.yaml extra.yaml``)."""
    return [
        "timeout", "-k", "10", str(timeout_s),
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(SMOKE_CONFIG),
        *args,
        "--config", f"mirror_dir={mirror}",
    ]  # fmt: skip


def run_snakemake(workdir: Path, *args: str, timeout_s: int = SMOKE_TIMEOUT_S, mirror: Path = MIRROR_DIR) -> str:
    """Run `snakemake_command`; fail the test with the output's tail unless it exits 0."""
    cmd = snakemake_command(workdir, *args, timeout_s=timeout_s, mirror=mirror)
    proc = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        why = "timed out" if proc.returncode in (124, 137) else f"exited {proc.returncode}"
        pytest.fail(f"{shlex.join(cmd)} {why}:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc.stdout + proc.stderr


def _action(rule) -> str | None:
    """How a Snakemake rule runs: script, shell, notebook, wrapper, run, or None."""
    for kind, value in (("script", rule.script), ("shell", rule.shellcmd), ("notebook", rule.notebook),
                        ("wrapper", rule.wrapper)):  # fmt: skip
        if value:
            return kind
    return None if rule.norun else "run"


@pytest.fixture(scope="session")
def workflow_rules(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RuleInfo]:
    """Every rule of the workflow (smoke configuration), loaded through Snakemake's API."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(
                configfiles=[SMOKE_CONFIG], config={"mirror_dir": str(mirror_dir)}
            ),
            storage_settings=StorageSettings(),
            snakefile=REPO_ROOT / "Snakefile",
            workdir=tmp_path_factory.mktemp("workflow"),
        )._workflow
        rules = {}
        for rule in workflow.rules:
            basedir = Path(rule.basedir.get_path_or_uri(secret_free=True))
            rules[rule.name] = RuleInfo(
                name=rule.name,
                conda_env=(basedir / rule.conda_env).resolve() if rule.conda_env else None,
                script=(basedir / rule.script).resolve() if rule.script else None,
                action=_action(rule),
                local=rule.name in workflow._localrules,
                snakefile=Path(str(rule.snakefile)),
                resources={
                    name: res.raw
                    for name, res in rule.resources.items()
                    if not name.startswith("_") and not callable(res.raw)
                },
                log=[str(path) for path in rule.log],
                benchmark=str(rule.benchmark) if rule.benchmark else None,
            )
    return rules


@pytest.fixture(scope="session")
def smoke_mirror(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the mirror (about 30 MB) whose files tests may edit or touch."""
    root = tmp_path_factory.mktemp("smoke_mirror")
    shutil.copytree(mirror_dir, root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="session")
def smoke_snakemake(smoke_mirror: Path):
    """`run_snakemake` on the smoke mirror: run snakemake on the smoke configuration in a test's directory."""
    return functools.partial(run_snakemake, mirror=smoke_mirror)


@pytest.fixture(scope="session")
def smoke_run(smoke_snakemake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole smoke DAG run once per session on the local machine (2 cores); its directory.

    Tests that edit the smoke mirror or the workspace restore both (contents and mtimes) before they end.
    """
    workdir = tmp_path_factory.mktemp("smoke_run")
    smoke_snakemake(workdir, "--cores", "2")
    return workdir
