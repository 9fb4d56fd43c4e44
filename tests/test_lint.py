"""The workflow passes `snakemake --lint`, and the Snakefile and rules are formatted by snakefmt
(with the settings in pyproject.toml's [tool.snakefmt]: line length, directive order)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAKE_FILES = [REPO_ROOT / "Snakefile", *sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))]


def test_snakemake_lint_reports_nothing(mirror_dir: Path, tmp_path: Path) -> None:
    cmd = [
        "timeout", "-k", "10", "300",
        sys.executable, "-m", "snakemake", "--lint",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(tmp_path),
        "--configfile", str(REPO_ROOT / "config" / "smoke.yaml"),
        "--config", f"mirror_dir={mirror_dir}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in output, f"snakemake --lint:\n{output}"


def test_snakefmt_check_is_clean() -> None:
    snakefmt = shutil.which("snakefmt")
    if snakefmt is None:
        pytest.fail("snakefmt is not installed: pip install -e '.[test]'")
    # Run from the repository root so that snakefmt reads pyproject.toml's [tool.snakefmt].
    proc = subprocess.run(
        ["timeout", "-k", "10", "120", snakefmt, "--check", "--diff", *map(str, SNAKE_FILES)],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (
        "snakefmt would reformat these files (run `snakefmt Snakefile workflow/rules`):\n"
        + (proc.stdout + proc.stderr)[-8000:]
    )
