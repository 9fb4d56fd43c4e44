"""One benchmark's section of a markdown file (``--doc docs/throughput.md``), written from the run itself.

A section sits between ``<!-- benchmark:NAME -->`` and ``<!-- /benchmark:NAME -->``; writing it replaces
that section only (or appends it) and keeps the other benchmarks' sections as they are. Everything in it
comes from the run that writes it: command, date, machine, load average, kappaflow commit and tables.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from kappaflow.provenance import provenance

HEADER = """# Throughput

Written by the benchmark scripts, one section each; a script run with `--doc docs/throughput.md` rewrites
its own section and keeps the others. Every number below comes from the run named in its section; speeds
are compared with a baseline timed in the same run, which is steadier than comparing runs on a shared
machine. Do not edit by hand: rerun the command of a section instead.
"""


def load_average() -> str:
    """The 1, 5 and 15 min load averages from ``/proc/loadavg``."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def kappaflow_commit() -> str:
    """Short commit of the imported kappaflow's checkout, with ``(dirty)`` when it has changes."""
    info = provenance()
    if info["commit"] is None:
        return "not a git checkout"
    return str(info["commit"])[:7] + (" (dirty)" if info["dirty"] else "")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; cells are written with ``str`` (``|`` escaped)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", r"\|") for cell in line) + " |"
                     for line in lines)


def ratio(value: float, baseline: float) -> str:
    """``value / baseline`` as ``1.23×``."""
    return f"{value / baseline:.2f}×"


class Run:
    """The run as its section describes it; create it before timing anything (date, load at start)."""

    def __init__(self) -> None:
        self.command = shlex.join(["python", *sys.argv])
        self.started = dt.datetime.now().astimezone()
        self.load_start = load_average()

    def preamble(self) -> str:
        """Command, date, machine, load average at start and now, and the kappaflow commit."""
        seconds = (dt.datetime.now().astimezone() - self.started).total_seconds()
        return "\n".join([
            f"- command: `{self.command}`",
            f"- date: {self.started:%Y-%m-%d %H:%M %Z}, {seconds:.0f} s of benchmark after the imports",
            f"- machine: {cpu_model()}, {os.cpu_count()} cores, niceness {os.nice(0)}",
            f"- load average (1 / 5 / 15 min): {self.load_start} at start, {load_average()} at end",
            f"- kappaflow: commit {kappaflow_commit()}",
        ])


def write_section(path: Path, name: str, title: str, body: str, run: Run) -> None:
    """Replace (or append) section ``name`` of the markdown file ``path``, created with :data:`HEADER`."""
    start, end = f"<!-- benchmark:{name} -->", f"<!-- /benchmark:{name} -->"
    section = f"{start}\n## {title}\n\n{run.preamble()}\n\n{body.strip()}\n{end}"
    text = path.read_text() if path.is_file() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"wrote section {name!r} of {path}", file=sys.stderr)
