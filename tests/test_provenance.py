"""Provenance: which kappaflow ran, and a second clone's workflow runs its own package."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import kappaflow
import pytest
from kappaflow import provenance as prov

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "workflow" / "scripts" / "kappaflow"


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_provenance_of_this_checkout() -> None:
    info = prov.provenance()
    assert info == {
        "version": kappaflow.__version__,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain")),
        "package_path": str(PACKAGE_DIR),
    }
    dirty = " (dirty)" if info["dirty"] else ""
    expected = f"kappaflow {info['version']} commit {info['commit']}{dirty} from {PACKAGE_DIR}"
    assert prov.describe(info) == expected


def test_no_checkout_and_no_git_never_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prov, "PACKAGE_DIR", tmp_path)  # not inside a git checkout
    info = prov.provenance()
    assert (info["commit"], info["dirty"], info["package_path"]) == (None, None, str(tmp_path))
    assert prov.describe(info) == f"kappaflow {kappaflow.__version__} (not a git checkout) from {tmp_path}"
    monkeypatch.setattr(prov, "PACKAGE_DIR", PACKAGE_DIR)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable
    assert prov.provenance()["commit"] is None


def test_version_falls_back_to_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(kappaflow, "__version__")
    assert prov.package_version() == prov.metadata.version("kappaflow")


def test_log_to_file_starts_with_the_provenance(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    code = (
        "import sys; from kappaflow.logs import log_to_file\n"
        "log_to_file(sys.argv[1]); print('x', file=sys.stderr)"
    )
    subprocess.run([sys.executable, "-c", code, str(log)], check=True, timeout=60)
    first, second = log.read_text().splitlines()
    assert first.endswith(f"INFO kappaflow.logs: {prov.describe()}")
    assert second == "x"


def _clone_working_tree(clone: Path) -> None:
    """``git clone`` this repository, then make its files those of the working tree (uncommitted edits)."""
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=60)
    for name in filter(None, _git("ls-files", "-co", "--exclude-standard", "-z").split("\0")):
        if (REPO_ROOT / name).is_file():  # files deleted but not staged are listed too
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, clone / name)
    for name in filter(None, _git("diff", "--name-only", "--diff-filter=D", "-z", "HEAD").split("\0")):
        (clone / name).unlink(missing_ok=True)


def test_second_clone_runs_its_own_package(mirror_dir: Path, tmp_path: Path) -> None:
    """A rule's script in a second clone imports that clone's kappaflow, not the editable install's."""
    clone, workdir = tmp_path / "clone", tmp_path / "work"
    _clone_working_tree(clone)
    with open(clone / "workflow" / "scripts" / "kappaflow" / "__init__.py", "a") as init:
        init.write('\n__version__ = "0.0.0+second-clone"\n')
    cmd = [
        "timeout", "-k", "10", "120",
        sys.executable, "-m", "snakemake", "resources/aflow_agl/labels.csv", "--cores", "1",
        "--snakefile", str(clone / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(clone / "config" / "smoke.yaml"),
        "--config", f"mirror_dir={mirror_dir}",
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{shlex.join(cmd)}:\n{(proc.stdout + proc.stderr)[-6000:]}"
    first_line = (workdir / "logs" / "aflow_agl" / "aflow.log").read_text().splitlines()[0]
    clone_package = clone.resolve() / "workflow" / "scripts" / "kappaflow"
    commit = _git("rev-parse", "HEAD", cwd=clone)
    expected = f"kappaflow 0.0.0+second-clone commit {commit} (dirty) from {clone_package}"
    assert first_line.endswith(expected), first_line
