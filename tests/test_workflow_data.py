"""The data and prepare rules of the workflow: the DAG, a run on an AFLOW subset, incremental reruns."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from kappaflow import graphs

REPO_ROOT = Path(__file__).resolve().parents[1]
AFLOW_SUBSET = 40
DATASETS = ("aflow", "dataset1", "dataset2")
PREPARE_TARGETS = [
    "results/data/rejected.csv",
    "results/matching/aflow_hq_matches.csv",
    *(f"results/graphs/{dataset}.parquet" for dataset in DATASETS),
]


def snakemake(workdir: Path, mirror: Path, *args: str, timeout_s: int = 900, extra_config: str = "") -> str:
    """Run snakemake (smoke config, ``aflow_subset`` 40, ``extra_config`` YAML, the given mirror) in ``workdir``;
    its output.

    The subset comes from a config file: ``--config data={aflow_subset: 40}`` reaches the schema
    validation as the string ``'40'``; a second ``--configfile`` would replace the first.
    """
    subset = workdir.parent / f"{workdir.name}-subset.yaml"
    subset.write_text(f"data:\n  aflow_subset: {AFLOW_SUBSET}\n{extra_config}")
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(REPO_ROOT / "config" / "smoke.yaml"), str(subset),
        *args,
        "--config", f"mirror_dir={mirror}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-6000:]}")
    return output


def planned_jobs(output: str) -> dict[str, int]:
    """Rule → number of jobs, from the first 'Job stats' table of a dry run (empty: nothing to do)."""
    jobs: dict[str, int] = {}
    lines = iter(output.splitlines())
    for line in lines:
        if line.startswith("Job stats:"):
            break
    for line in lines:
        match = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if match and match.group(1) == "total":
            break
        if match:
            jobs[match.group(1)] = int(match.group(2))
    return jobs


@pytest.fixture(scope="module")
def private_mirror(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror whose label files and AFLOW CIFs the tests may touch: copies of them, links to the rest."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "hq").mkdir()
    (root / "aflow_agl").mkdir()
    for name in ("hq/dataset1.csv", "hq/dataset2.csv", "aflow_agl/labels.csv"):
        shutil.copyfile(mirror_dir / name, root / name)
    cif = root / "aflow_agl" / "cif"
    shutil.copytree(mirror_dir / "aflow_agl" / "cif", cif, copy_function=shutil.copyfile)
    cif.chmod(0o755)  # copytree copied the mirror folder's read-only mode
    for name in ("mp", "pretrained"):
        (root / name).symlink_to(mirror_dir / name)
    return root


@pytest.fixture(scope="module")
def prepared(private_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory in which the data and prepare rules have run on the AFLOW subset."""
    workdir = tmp_path_factory.mktemp("prepare")
    snakemake(workdir, private_mirror, "--cores", "2", *PREPARE_TARGETS)
    return workdir


def test_dry_run_builds_the_whole_dag(mirror_dir: Path, tmp_path: Path) -> None:
    jobs = planned_jobs(snakemake(tmp_path, mirror_dir, "-n"))
    for rule in ("aflow_agl", "mp_structures", "validate", "gather_rejected", "match_aflow_hq", "featurize"):
        assert rule in jobs, f"rule {rule} is not in the DAG: {jobs}"
    assert jobs["validate"] == jobs["featurize"] == len(DATASETS)
    assert "scan_screening_set" in jobs and "scan_gather" in jobs


def test_scan_disabled_leaves_the_screening_out_of_the_dag(mirror_dir: Path, tmp_path: Path) -> None:
    jobs = planned_jobs(snakemake(tmp_path / "work", mirror_dir, "-n", extra_config="scan:\n  enabled: false\n"))
    assert jobs["featurize"] == len(DATASETS) and "results_doc" in jobs
    assert [rule for rule in jobs if rule.startswith("scan_")] == []


@pytest.mark.slow
def test_prepare_outputs(prepared: Path) -> None:
    rows_in = {
        "aflow": len(pd.read_csv(prepared / "resources" / "aflow_agl" / "labels.csv")),
        **{
            d: len(pq.read_table(prepared / "resources" / "mp" / f"{d}.parquet"))
            for d in ("dataset1", "dataset2")
        },
    }
    assert rows_in["aflow"] == AFLOW_SUBSET
    rejected_parts = []
    for dataset in DATASETS:
        kept = pq.read_table(prepared / "results" / "data" / f"{dataset}.parquet")
        rejected = pd.read_csv(prepared / "results" / "data" / "rejected" / f"{dataset}.csv")
        assert len(kept) + len(rejected) == rows_in[dataset], dataset
        assert kept.schema.equals(graphs.STRUCTURE_SCHEMA)
        graph_set = graphs.read_graph_set(prepared / "results" / "graphs" / f"{dataset}.parquet")
        assert list(graph_set.ids) == kept.column("id").to_pylist()
        assert graph_set.cutoff == 4.0
        assert (graph_set.targets > 0).all()
        rejected_parts.append(rejected)
        log = (prepared / "logs" / "validate" / f"{dataset}.log").read_text()
        assert log.count("rejected ") == len(rejected), "one log line per rejected row"
    gathered = pd.read_csv(prepared / "results" / "data" / "rejected.csv")
    assert len(gathered) == sum(len(part) for part in rejected_parts)
    matches = pd.read_csv(prepared / "results" / "matching" / "aflow_hq_matches.csv")
    assert list(matches.columns) == [
        "aflow_entry",
        "hq_dataset",
        "mp_id",
        "formula",
        "kappa_agl_wmk",
        "kappa_hq_wmk",
    ]


@pytest.mark.slow
def test_second_run_has_nothing_to_do(prepared: Path, private_mirror: Path) -> None:
    output = snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS)
    assert planned_jobs(output) == {}
    assert "Nothing to be done" in output


def _move_first_atom(cif: Path) -> None:
    """Shift the fractional z of the CIF's first atom (the line after the last ``_atom_site`` header) by 0.01."""
    lines = cif.read_text().splitlines(keepends=True)
    index = max(i for i, line in enumerate(lines) if line.lstrip().startswith("_atom_site")) + 1
    fields = lines[index].split()
    fields[4] = f"{float(fields[4]) + 0.01:.10f}"
    lines[index] = " ".join(fields) + "\n"
    cif.write_text("".join(lines))


def _restore(path: Path, content: bytes, mtime_ns: int) -> None:
    """Put back a file's content and modification time."""
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.slow
def test_changed_mirror_cif_reruns_aflow_agl(prepared: Path, private_mirror: Path) -> None:
    entry = pd.read_csv(prepared / "resources" / "aflow_agl" / "labels.csv").entry[0]
    cif = private_mirror / "aflow_agl" / "cif" / f"{entry}.cif"
    content, mtime_ns = cif.read_bytes(), cif.stat().st_mtime_ns
    _move_first_atom(cif)
    try:
        output = snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS)
    finally:
        _restore(cif, content, mtime_ns)
    assert planned_jobs(output).get("aflow_agl") == 1
    assert re.search(rf"reason: Updated input files:.*{re.escape(str(cif))}", output)
    assert planned_jobs(snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS)) == {}


@pytest.mark.slow
def test_deleted_mirror_cif_is_quarantined(prepared: Path, private_mirror: Path, tmp_path: Path) -> None:
    """A CIF deleted from the mirror reruns the acquisition (its input set changed), which records the
    entry without CIF; validation quarantines it. Runs in a copy of the prepared workspace."""
    workdir = tmp_path / "work"
    shutil.copytree(prepared, workdir, symlinks=True)
    entry = pq.read_table(prepared / "results" / "data" / "aflow.parquet").column("id")[0].as_py()
    cif = private_mirror / "aflow_agl" / "cif" / f"{entry}.cif"
    content, mtime_ns = cif.read_bytes(), cif.stat().st_mtime_ns
    cif.unlink()
    try:
        output = snakemake(workdir, private_mirror, "--cores", "2", *PREPARE_TARGETS)
    finally:
        _restore(cif, content, mtime_ns)
    assert "aflow_agl" in output and "Set of input files has changed" in output
    rejected = pd.read_csv(workdir / "results" / "data" / "rejected.csv")
    reason = rejected.loc[rejected.id == entry, "reason"]
    assert len(reason) == 1 and f"CIF missing from the mirror: {cif}" in reason.iloc[0]
    rows_in = len(pd.read_csv(workdir / "resources" / "aflow_agl" / "labels.csv"))
    kept = pq.read_table(workdir / "results" / "data" / "aflow.parquet").column("id").to_pylist()
    assert entry not in kept
    assert rows_in == AFLOW_SUBSET == len(kept) + len(rejected[rejected.dataset == "aflow"])
    assert planned_jobs(snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS)) == {}


@pytest.mark.slow
def test_editing_a_label_file_reruns_only_its_dependents(prepared: Path, private_mirror: Path) -> None:
    """The mirror's dataset1.csv is the real input (resources/mp/dataset1.parquet is derived from it).

    Snakemake 9 compares checksums of small inputs: a bare ``touch`` (newer mtime, same content)
    reruns nothing; a changed label reruns Dataset1's chain and the rules gathering all datasets.
    """
    label = private_mirror / "hq" / "dataset1.csv"
    newer = max(path.stat().st_mtime for path in (prepared / "results").rglob("*") if path.is_file()) + 10
    os.utime(label, (newer, newer))
    assert planned_jobs(snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS)) == {}
    labels = pd.read_csv(label)
    labels.loc[0, "ltc_wmk"] *= 1.01
    labels.to_csv(label, index=False)
    jobs = planned_jobs(snakemake(prepared, private_mirror, "-n", *PREPARE_TARGETS))
    assert jobs == {
        "mp_structures": 1,
        "validate": 1,
        "featurize": 1,
        "gather_rejected": 1,
        "match_aflow_hq": 1,
    }
