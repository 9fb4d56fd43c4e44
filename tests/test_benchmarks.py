"""The benchmark scripts run and write their section of the throughput document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_finetune_throughput_writes_a_row_per_backbone_and_keeps_other_sections(tmp_path: Path):
    page = tmp_path / "throughput.md"
    page.write_text("# Throughput\n\n<!-- benchmark:scan -->\n## Scan\n\nkept\n<!-- /benchmark:scan -->\n")
    cmd = [sys.executable, "finetune_throughput.py", "--backbones", "m3gnet-2018-eform", "--limit", "8",
           "--epochs", "1", "--repeats", "1", "--doc", str(page)]
    proc = subprocess.run(cmd, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = page.read_text()
    assert "kept" in text, "another benchmark's section was lost"
    section = text.split("<!-- benchmark:finetune_throughput -->")[1].split("<!-- /benchmark:finetune_throughput -->")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in section.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["megnet-2018-eform (baseline)"][2] == "1.00×"
    assert set(rows) == {"backbone", "megnet-2018-eform (baseline)", "m3gnet-2018-eform",
                         "KappaNet (MEGNet-2018 as steps I-III train it)"}
    assert all(float(row[1].replace(",", "")) > 0 for name, row in rows.items() if name != "backbone")
    assert "76 of its 95 structures" in section  # the projection is for the whole set's training split
