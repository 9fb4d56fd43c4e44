"""``results/docs/results.md``: one document of a run's results, every number read from files the workflow wrote.

Sections: the configuration it came from (resolved config, software, the commits that trained the runs),
the MAPE table and its comparison with the published one, the held-out table with its own paired step
comparison (runs paired by fold and seed) and the calibration of the ensemble spread, the backbones
compared (``backbone_comparison``), paired step
comparisons of the paper protocol (per training set, runs paired by seed: median difference, how many
improve, Wilcoxon signed-rank p), run statuses and wall time per rule (from ``logs/benchmarks``).
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import wilcoxon

#: Step pairs compared (earlier, later): pretraining, the AFLOW stage, both.
STEP_PAIRS = (("I", "II"), ("II", "III"), ("I", "III"))
#: p-value below which a paired difference is called beyond noise.
ALPHA = 0.05
SOFTWARE = ("torch", "matgl", "lightning", "pymatgen", "snakemake", "numpy", "pandas", "scipy")


def paired_steps(per_run: pd.DataFrame) -> pd.DataFrame:
    """Step comparisons on each training set's own test set, runs paired by ``run`` (seed, or fold and seed
    on the held-out protocol; both ``ok``), for the sets on which both steps were trained (step III is
    never trained on AFLOW, its stage 1).

    Columns: ``train_on, earlier, later, n_pairs, median_diff`` (later − earlier MAPE; negative: later
    better), ``n_improved, p_wilcoxon`` (two-sided; NaN when every difference is 0 or nothing pairs).
    """
    own = per_run[per_run["train_on"] == per_run["test_on"]]
    trained = own.groupby("train_on")["step"].agg(set)
    wide = own[own["status"] == "ok"].pivot_table(index=["train_on", "run"], columns="step", values="mape")
    wide = wide.reindex(columns=sorted(set(own["step"])))
    rows = []
    for train_on, steps in trained.items():
        ok_sets = wide.index.get_level_values("train_on")
        part = wide.xs(train_on, level="train_on") if train_on in ok_sets else wide.iloc[:0]
        for earlier, later in STEP_PAIRS:
            if not {earlier, later} <= steps:
                continue
            pair = part[[earlier, later]].dropna()
            diff = (pair[later] - pair[earlier]).to_numpy(float)
            p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else math.nan
            rows.append({"train_on": train_on, "earlier": earlier, "later": later, "n_pairs": len(diff),
                         "median_diff": float(np.median(diff)) if len(diff) else math.nan,
                         "n_improved": int((diff < 0).sum()), "p_wilcoxon": p})
    return pd.DataFrame(rows, columns=["train_on", "earlier", "later", "n_pairs", "median_diff", "n_improved",
                                       "p_wilcoxon"])


def verdict(row: Any) -> str:
    """Plain words for one paired comparison (a row of :func:`paired_steps`)."""
    if not row.n_pairs:
        return "no paired runs"
    if math.isnan(row.p_wilcoxon) or row.p_wilcoxon >= ALPHA:
        return "no difference beyond noise"
    return "better" if row.median_diff < 0 else "worse"


def transfer_sentence(paired: pd.DataFrame, protocol: str = "paper protocol") -> str:
    """Whether two-stage transfer (step III against step II) helps, per training set, with its uncertainty."""
    rows = paired[(paired["earlier"] == "II") & (paired["later"] == "III")]
    if rows.empty:
        return f"Two-stage transfer cannot be judged on the {protocol}: steps II and III were not both trained."
    parts = [
        f"{row.train_on}: {verdict(row)} (median III − II {row.median_diff:+.3f} MAPE over {row.n_pairs} "
        f"paired runs, III better in {row.n_improved}, Wilcoxon p = {row.p_wilcoxon:.2g})"
        if row.n_pairs else f"{row.train_on}: no paired runs (no seed has an ok run of both steps)"
        for row in rows.itertuples(index=False)
    ]
    return f"Does two-stage transfer (step III) beat step II ({protocol})? " + "; ".join(parts) + "."


def wall_times(benchmarks: Sequence[str | Path]) -> pd.DataFrame:
    """Per rule (``logs/benchmarks/<rule>/...``): jobs, total, median and max wall time (s)."""
    rows = [{"rule": _rule_of(Path(path)), "s": float(pd.read_csv(path, sep="\t")["s"].iloc[-1])} for path in benchmarks]
    frame = pd.DataFrame(rows, columns=["rule", "s"])
    summary = frame.groupby("rule", sort=True)["s"].agg(["count", "sum", "median", "max"]).reset_index()
    return summary.rename(columns={"count": "jobs", "sum": "total_s", "median": "median_s", "max": "max_s"})


def _rule_of(benchmark: Path) -> str:
    """The rule of a benchmark file: the folder after ``benchmarks`` (``logs/benchmarks/<rule>/...``)."""
    parts = benchmark.parts
    return parts[parts.index("benchmarks") + 1] if "benchmarks" in parts[:-2] else benchmark.parent.name


def run_statuses(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per step, training set and status (``ok``, ``collapsed``, ``diverged``)."""
    return pd.crosstab([runs["step"], runs["train_on"]], runs["status"]).reset_index().rename_axis(columns=None)


def trained_by(run_jsons: Sequence[str | Path]) -> list[str]:
    """The distinct kappaflow versions and commits recorded in the runs' ``run.json``."""
    found = set()
    for path in run_jsons:
        code = json.loads(Path(path).read_text()).get("kappaflow") or {}
        dirty = " (uncommitted changes)" if code.get("dirty") else ""
        found.add(f"kappaflow {code.get('version', '?')} commit {code.get('commit') or 'unknown'}{dirty}")
    return sorted(found)


def software() -> list[str]:
    """Python and the main packages of the environment that rendered the document."""
    versions = [f"Python {platform.python_version()}"]
    for name in SOFTWARE:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return versions


def _included(markdown: str) -> str:
    """A table file's markdown, its headings one level down (they sit under this document's sections)."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown.strip(), flags=re.MULTILINE)


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain pipe table (numbers rounded to ``digits``)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "—" if math.isnan(value) else f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def render(
    config: Mapping[str, Any],
    tables: Mapping[str, str],
    per_run: pd.DataFrame,
    runs: pd.DataFrame,
    run_jsons: Sequence[str | Path],
    benchmarks: Sequence[str | Path],
    heldout_per_run: pd.DataFrame | None = None,
) -> str:
    """The document. ``tables``: the markdown of ``mape_table``, ``vs_published``, if held-out folds ran
    ``heldout_table`` and ``calibration`` (with ``heldout_per_run``, the held-out runs' metrics), and if
    backbones were compared ``backbone_comparison``."""
    paired = paired_steps(per_run)
    if heldout_per_run is None:
        heldout = ["The held-out protocol is disabled in this configuration."]
    else:
        heldout_paired = paired_steps(heldout_per_run)
        heldout = [
            _included(tables["heldout_table"]),
            transfer_sentence(heldout_paired, "held-out protocol"),
            "Held-out runs paired by outer fold and seed, each scored on its outer test fold; columns as in the "
            "paired comparisons below.",
            _markdown(heldout_paired.assign(verdict=[verdict(row) for row in heldout_paired.itertuples(index=False)])),
            _included(tables["calibration"]),
        ]
    sections = [
        "# kappaflow results",
        "Generated by the workflow (rule `results_doc`) from the files it wrote; nothing here is typed by hand.",
        "## Configuration",
        "```yaml\n" + yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True).rstrip() + "\n```",
        "Trained by: " + "; ".join(trained_by(run_jsons)) + ".",
        "Rendered with: " + ", ".join(software()) + ".",
        "## MAPE on κ, paper protocol",
        _included(tables["mape_table"]),
        "## Compared with the published table",
        _included(tables["vs_published"]),
        "## Held-out protocol",
        *heldout,
        "## Backbones",
        _included(tables["backbone_comparison"]) if "backbone_comparison" in tables
        else "Frozen-representation regression is disabled in this configuration (model.frozen.enabled).",
        "## Paired step comparisons",
        transfer_sentence(paired),
        "Runs paired by seed, each on its own training set's validation split; `median_diff` is later − earlier "
        f"MAPE (negative: the later step is better); p from a two-sided Wilcoxon signed-rank test, α = {ALPHA}.",
        _markdown(paired.assign(verdict=[verdict(row) for row in paired.itertuples(index=False)])),
        "## Run statuses",
        _markdown(run_statuses(runs)),
        "## Wall time per rule (s)",
        _markdown(wall_times(benchmarks), digits=1),
    ]
    return "\n\n".join(sections) + "\n"


def write_results_doc(
    config: Mapping[str, Any],
    table_files: Mapping[str, str | Path],
    per_run_csv: str | Path,
    runs_csv: str | Path,
    run_jsons: Sequence[str | Path],
    benchmarks: Sequence[str | Path],
    output: str | Path,
    heldout_per_run_csv: str | Path | None = None,
) -> None:
    """Read the result files, :func:`render`, write ``output``."""
    tables = {name: Path(path).read_text() for name, path in table_files.items()}
    heldout = pd.read_csv(heldout_per_run_csv) if heldout_per_run_csv else None
    text = render(config, tables, pd.read_csv(per_run_csv), pd.read_csv(runs_csv), run_jsons, benchmarks, heldout)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(text)
