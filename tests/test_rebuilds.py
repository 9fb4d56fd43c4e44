"""The rebuild matrix: after one edit to the config or the mirror, a dry run of the finished smoke workspace
schedules exactly the jobs whose outputs depend on what changed, and nothing more (slow).

Each case writes down the expected jobs (rule and wildcards); Snakemake's dry-run reasons are printed
when a case fails. Edits of the mirror are undone (content and mtime) before the case ends, so the
workspace stays finished for the other tests that share it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

#: config/smoke.yaml: steps, training/test sets, seeds, held-out set, folds and seeds, scan chunks (140 in 50s).
STEPS, SETS, SEEDS = ("I", "II", "III"), ("Dataset1", "Dataset2", "MIX"), (1, 2)
HELDOUT_SETS, HELDOUT_FOLDS, HELDOUT_SEEDS, SCAN_CHUNKS = ("Dataset1",), 2, (1, 2), 3
BACKBONES = ("megnet-2018-eform", "m3gnet-2018-eform", "chgnet-0.3.0")
#: config/smoke.yaml's model.finetune.backbones (fine-tuned on Dataset1 with seed 1, steps II and III).
FINETUNED = "m3gnet-2018-eform"
FINETUNED_STEPS = ("II", "III")
PROTOCOL_FIGURES = ("loss_curves", "parity", "mape_heatmap", "step_bars")
#: config/smoke.yaml's ship.step and ship.train_on: the ensemble rule ship_model exports.
SHIPPED = ("III", "Dataset1")


def job(rule: str, **wildcards: object) -> str:
    """``rule[name=value,...]`` (wildcards sorted by name), as :func:`scheduled_jobs` writes a job."""
    inner = ",".join(f"{name}={value}" for name, value in sorted(wildcards.items()))
    return f"{rule}[{inner}]" if inner else rule


def runs(rule: str, steps: Iterable[str] = STEPS, sets: Iterable[str] = SETS, seeds: Iterable[int] = SEEDS) -> set[str]:
    """``train`` or ``evaluate_run`` jobs of these runs (no step III on AFLOW)."""
    return {
        job(rule, step=step, train_on=train_on, seed=seed)
        for step, train_on, seed in itertools.product(steps, sets, seeds)
        if not (step == "III" and train_on == "AFLOW")
    }


def stage1(seeds: Iterable[int] = SEEDS, own_runs: bool = False) -> set[str]:
    """The stage-1 runs of these seeds: step II on AFLOW (smoke: stage1_epochs = epochs), else (``own_runs``)
    rule train_stage1."""
    if own_runs:
        return {job("train_stage1", seed=seed) for seed in seeds}
    return {job("train", step="II", train_on="AFLOW", seed=seed) for seed in seeds}


def figures(*names: str) -> set[str]:
    return {job("figure", figure=name) for name in names}


def trust(steps: Iterable[str] = STEPS, sets: Iterable[str] = SETS) -> set[str]:
    """``ensemble_trust`` jobs (domain.parquet and trust.json) of these ensembles, and ``ship_model`` when the
    shipped ensemble is one of them."""
    ensembles = set(itertools.product(steps, sets))
    return {job("ensemble_trust", step=step, train_on=train_on) for step, train_on in ensembles} | (
        {"ship_model"} if SHIPPED in ensembles else set()
    )


def heldout(steps: Iterable[str] = STEPS, folds: int = HELDOUT_FOLDS, seeds: Iterable[int] = HELDOUT_SEEDS) -> set[str]:
    """The held-out members and fold ensembles of these steps, the calibration, the tables, and what reads the
    calibration: the trust files of the cross-validated ensembles, the collected predictions (their in_domain)
    and the tables after them, the scan (it reads step III's), results.md and the shipped model (its card)."""
    steps = list(steps)
    members = {job("heldout_run", step=step, train_on=name, fold=fold, seed=seed)
               for step, name, fold, seed in itertools.product(steps, HELDOUT_SETS, range(folds), seeds)}
    ensembles = {job("heldout_fold_ensemble", step=step, train_on=name, fold=fold)
                 for step, name, fold in itertools.product(steps, HELDOUT_SETS, range(folds))}
    return {*members, *ensembles, "heldout_calibration", "heldout_tables", *trust(sets=HELDOUT_SETS),
            *PROTOCOL_TABLES, *SCAN, "ship_model"}


#: The end of every change that reaches a result: results.md (its config block, tables or benchmarks) and all.
DOC = {"results_doc", "all"}
#: Everything after the runs' predictions: the collected tables, the protocol's figures, the backbone comparison.
PROTOCOL_TABLES = {"collect_runs", "mape_tables", *figures(*PROTOCOL_FIGURES), "backbone_comparison", *DOC}
#: The frozen-representation regressions of every backbone, refitted (a protocol setting changed) and compared.
FROZEN = {*(job("frozen_protocols", backbone=name) for name in BACKBONES), "backbone_comparison", *DOC}
#: A validated data set changed: every backbone represents it again, then refits.
REPRESENTED = {*(job("represent", backbone=name) for name in BACKBONES), *FROZEN}
#: The scan after its models changed: every chunk, then gather, candidates, figure.
SCAN = {*(job("scan_chunk", chunk=chunk) for chunk in range(SCAN_CHUNKS)), "scan_gather", "scan_candidates",
        "scan_figure", *DOC}  # fmt: skip


def finetuned(
    backbone: str = FINETUNED, paper: bool = True, folds: int = HELDOUT_FOLDS, seeds: Iterable[int] = HELDOUT_SEEDS,
    steps: Iterable[str] = FINETUNED_STEPS, stage1: Iterable[int] = (),
) -> set[str]:
    """A fine-tuned backbone's jobs on Dataset1 for each of ``steps``: its paper run (seed 1), its held-out members
    and fold ensembles, the ensemble's trust files (its domain and its calibration from those folds); and its
    stage-1 runs of the seeds ``stage1``."""
    jobs = {job("finetune_stage1", backbone=backbone, seed=seed) for seed in stage1}
    for step in steps:
        jobs |= {job("finetune_heldout_run", backbone=backbone, step=step, train_on="Dataset1", fold=fold, seed=seed)
                 for fold, seed in itertools.product(range(folds), seeds)}
        if paper:
            jobs.add(job("finetune_backbone", backbone=backbone, step=step, train_on="Dataset1", seed=1))
        jobs.add(job("finetune_heldout_ensemble", backbone=backbone, step=step, train_on="Dataset1"))
        jobs.add(job("finetune_trust", backbone=backbone, step=step, train_on="Dataset1"))
    return jobs


def aflow_data_changed() -> set[str]:
    """An AFLOW source file changed: its data, stage 1, step III and what reads them (MEGNet's and the fine-tuned
    backbone's)."""
    return {
        "aflow_agl", job("validate", dataset="aflow"), job("featurize", dataset="aflow"), "gather_rejected",
        "match_aflow_hq", *stage1(), *runs("train", steps=["III"]), *runs("evaluate_run", steps=["III"]),
        *trust(steps=["III"]), *PROTOCOL_TABLES, *figures("agl_vs_abinitio"), *heldout(steps=["III"]),
        *REPRESENTED, *finetuned(steps=["III"], stage1=HELDOUT_SEEDS),
    }  # fmt: skip


def dataset2_changed() -> set[str]:
    """One Dataset2 label changed: retrain what trains on Dataset2 or MIX, re-evaluate what is tested on them."""
    return {
        job("mp_structures", dataset="dataset2"), job("validate", dataset="dataset2"),
        job("featurize", dataset="dataset2"), "gather_rejected", "match_aflow_hq",
        *runs("train", sets=["Dataset2", "MIX"]), *runs("evaluate_run"), *trust(sets=["Dataset2", "MIX"]),
        "baseline_paper_protocol", *PROTOCOL_TABLES, *figures("agl_vs_abinitio"), "heldout_tables", *SCAN,
        *REPRESENTED, "ship_model",
    }  # fmt: skip


def scheduled_jobs(output: str) -> dict[str, str]:
    """``job → reason`` of every job a dry run lists (``rule[wildcards]`` as :func:`job` writes it)."""
    jobs: dict[str, str] = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:\n)", output):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):\n", block)
        if not head:
            continue
        wildcards = re.search(r"^\s+wildcards: (.+)$", block, flags=re.MULTILINE)
        pairs = dict(pair.split("=", 1) for pair in wildcards.group(1).split(", ")) if wildcards else {}
        reason = re.search(r"^\s+reason: (.+)$", block, flags=re.MULTILINE)
        jobs[job(head.group(1), **pairs)] = reason.group(1) if reason else ""
    return jobs


@contextmanager
def edited(path: Path, edit: Callable[[str], str] | None) -> Iterator[None]:
    """``path`` rewritten by ``edit`` (or moved away when ``edit`` is None) until the block ends; then the
    original content and mtime are back."""
    stat, text = path.stat(), path.read_text()
    if edit is None:
        path.unlink()
    else:
        new = edit(text)
        assert new != text, f"the edit of {path} changed nothing"
        path.write_text(new)
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@contextmanager
def copied_again(root: Path) -> Iterator[None]:
    """Every file under ``root`` one minute newer, its content unchanged (a mirror copied or synced again), until
    the block ends; then the original mtimes are back."""
    stats = {path: path.stat() for path in root.rglob("*") if path.is_file()}
    for path, stat in stats.items():
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 60_000_000_000))
    try:
        yield
    finally:
        for path, stat in stats.items():
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def first_aflow_cif(mirror: Path) -> Path:
    """The CIF of the first AFLOW entry (in the smoke subset whatever its size)."""
    entry = sorted(pd.read_csv(mirror / "aflow_agl" / "labels.csv")["entry"])[0]
    return mirror / "aflow_agl" / "cif" / f"{entry}.cif"


def move_last_atom(cif: str) -> str:
    """The CIF with its last atom's fractional z moved by 0.01."""
    lines = cif.rstrip("\n").split("\n")
    fields = lines[-1].split()
    fields[4] = f"{(float(fields[4]) + 0.01) % 1.0:.10f}"
    return "\n".join([*lines[:-1], " ".join(fields)]) + "\n"


def change_first_kappa(csv: str) -> str:
    """The label CSV with its first κ value doubled."""
    header, first, *rest = csv.split("\n")
    cells = first.split(",")
    cells[-1] = repr(2 * float(cells[-1]))
    return "\n".join([header, ",".join(cells), *rest])


#: Config edits (an extra config file's text) and the jobs each must schedule.
CONFIG_CASES: dict[str, tuple[str, set[str]]] = {
    "no edit": ("{}\n", set()),
    "add a seed": (
        "training: {seeds: [1, 2, 3]}\n",
        {*stage1([3]), *runs("train", seeds=[3]), *runs("evaluate_run", seeds=[3]), *trust(),
         "baseline_paper_protocol", *PROTOCOL_TABLES, *SCAN, *FROZEN},
    ),
    "remove a seed": (
        "training: {seeds: [1]}\n", {*trust(), "baseline_paper_protocol", *PROTOCOL_TABLES, *SCAN, *FROZEN}
    ),
    "add a test set": (
        "training: {test_sets: [Dataset1, Dataset2, MIX, AFLOW]}\n",
        {*runs("evaluate_run"), "baseline_paper_protocol", *PROTOCOL_TABLES, *FROZEN},
    ),
    "add a train set": (
        "training: {train_sets: [Dataset1, Dataset2, MIX, AFLOW]}\n",
        {*runs("train", steps=["I"], sets=["AFLOW"]), *runs("evaluate_run", sets=["AFLOW"]),
         *trust(["I", "II"], ["AFLOW"]),
         "baseline_paper_protocol", *PROTOCOL_TABLES, *FROZEN},
    ),
    "change gpus": ("training: {gpus: 1}\n", set()),
    "change eval_batch_size": (
        "training: {eval_batch_size: 7}\nscan: {batch_size: 5}\nmodel: {batch_size: 3}\n", set()
    ),
    # stage 1 (2 epochs) stops being step II on AFLOW: its own runs, so every step-III job starts from a new file
    "change epochs": (
        "training: {epochs: 3}\n",
        {*runs("train"), *runs("evaluate_run"), *trust(), *PROTOCOL_TABLES, *SCAN, *stage1(own_runs=True),
         *heldout(steps=["III"])},
    ),
    "change scan.max_rel_std": ("scan: {max_rel_std: 0.5}\n", {"scan_candidates", "scan_figure", *DOC}),
    "change heldout.folds": (
        "heldout: {folds: 3}\n",
        {*heldout(folds=3), "heldout_baseline", *FROZEN, *finetuned(paper=False, folds=3)},
    ),
    "add a backbone": (
        "model: {backbones: [megnet-2018-eform, m3gnet-2018-eform, chgnet-0.3.0, sevennet-0]}\n",
        {job("represent", backbone="sevennet-0"), job("frozen_protocols", backbone="sevennet-0"),
         "backbone_comparison", *DOC},
    ),
    "fine-tune another backbone": (
        "model: {finetune: {backbones: [m3gnet-2018-eform, chgnet-0.3.0]}}\n",
        {*finetuned("chgnet-0.3.0", stage1=HELDOUT_SEEDS), "backbone_comparison", *DOC},
    ),
    "change finetune.epochs": ("model: {finetune: {epochs: 3}}\n", {*finetuned(), "backbone_comparison", *DOC}),
    # the stage-1 runs of the seeds that step III's paper run (1) and held-out members (1, 2) start from
    "change finetune.stage1_epochs": (
        "model: {finetune: {stage1_epochs: 3}}\n",
        {*finetuned(steps=["III"], stage1=HELDOUT_SEEDS), "backbone_comparison", *DOC},
    ),
    # the domain thresholds of MEGNet's and the fine-tuned backbone's ensembles, and what reads them
    "change heldout.domain_error_factor": (
        "heldout: {domain_error_factor: 2.0}\n",
        {"heldout_calibration", *trust(sets=HELDOUT_SETS), *PROTOCOL_TABLES, *SCAN,
         *(job("finetune_trust", backbone=FINETUNED, step=step, train_on="Dataset1") for step in FINETUNED_STEPS)},
    ),
    # a new member of every fold's ensemble (step III: with the stage-1 run of its seed)
    "add a held-out seed": (
        "heldout: {seeds: [1, 2, 3]}\n",
        {*heldout(seeds=[3]), *stage1([3]), *finetuned(paper=False, seeds=[3], stage1=[3]), "backbone_comparison"},
    ),
}  # fmt: skip


def assert_schedules(output: str, expected: set[str], case: str) -> None:
    jobs = scheduled_jobs(output)
    if not expected:
        assert not jobs and "Nothing to be done" in output, f"{case}: expected nothing to do, got {jobs}"
        return
    extra = {name: jobs[name] for name in sorted(set(jobs) - expected)}
    missing = sorted(expected - set(jobs))
    assert not extra and not missing, (
        f"{case}: scheduled but not expected (with Snakemake's reasons): {extra}\nexpected but not scheduled: {missing}"
    )


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_edit_reruns_exactly_its_dependents(case: str, smoke_run: Path, smoke_snakemake, tmp_path: Path):
    text, expected = CONFIG_CASES[case]
    extra = tmp_path / "edit.yaml"
    extra.write_text(text)
    assert_schedules(smoke_snakemake(smoke_run, str(extra), "--dry-run", "--cores", "2"), expected, case)


@pytest.mark.parametrize(
    ("case", "target", "edit", "expected"),
    [
        ("move one atom in one AFLOW CIF", first_aflow_cif, move_last_atom, aflow_data_changed()),
        ("delete one AFLOW CIF", first_aflow_cif, None, aflow_data_changed()),
        ("change one κ value in Dataset2", lambda mirror: mirror / "hq" / "dataset2.csv", change_first_kappa,
         dataset2_changed()),
    ],
    ids=["move-atom", "delete-cif", "dataset2-kappa"],
)  # fmt: skip
def test_mirror_edit_reruns_exactly_its_dependents(
    case: str, target, edit, expected: set[str], smoke_run: Path, smoke_snakemake, smoke_mirror: Path
):
    with edited(target(smoke_mirror), edit):
        output = smoke_snakemake(smoke_run, "--dry-run", "--cores", "2")
    assert_schedules(output, expected, case)


def test_mirror_copied_again_reruns_nothing(smoke_run: Path, smoke_snakemake, smoke_mirror: Path):
    """New mtimes, same contents (the pretrained backbones too, which are larger than Snakemake's default
    checksum limit of 1 MB; profiles/default raises it): nothing reruns."""
    assert any(path.stat().st_size > 1_000_000 for path in smoke_mirror.rglob("*.pt")), "no input above 1 MB to check"
    with copied_again(smoke_mirror):
        output = smoke_snakemake(smoke_run, "--dry-run", "--cores", "2")
    assert_schedules(output, set(), "mirror copied again")
