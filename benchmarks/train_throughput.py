"""Training throughput (structures/s per epoch) of KappaNet at a given batch size on this machine.

Stage 1: an AFLOW-sized set (the first N mirror AFLOW CIFs); stage 2: Dataset1 (mirror MP structures).
Two numbers per stage: the bare loop (pre-collated resident batches, forward + backward + Adam, no
Lightning) and the real Lightning loop of kappaflow.training (KappaModule + GraphLoader, which collates
each shuffled batch from the flat arrays). Optionally a torch.profiler table of the bare loop. Last, the
training wall time of the full paper configuration extrapolated from the Lightning rates (see
:func:`paper_configuration`).

    python benchmarks/train_throughput.py --threads 2 --aflow 500 --epochs 3 [--profile] [--doc PATH]

With ``--jobs N`` (default 2) it also runs N single-thread jobs side by side, each timing the
Lightning loop, and reports their sum: the machine's training throughput as the workflow uses it.
With ``--doc PATH`` it also writes its section of that markdown file (:mod:`doc`), every speed relative
to the bare loop's in the same run.

Profile (1 thread, batch 8): a step costs ≈5.5 ms of fixed per-step work (≈1,500 operator calls
through autograd; Dataset1's 2-3 atom graphs add little to it), AFLOW batches ≈1 ms more. The edge
matrix products run at ≈95 GFLOP/s, close to this core's peak; softplus costs ≈1 ns per element.
Adopted: quotient graphs (:mod:`kappaflow.quotient`; AFLOW batches keep 1 edge in 6.4, ≈1.7× more
structures/s), Set2Set through ``torch.lstm_cell`` (≈1.3 ms less per step), the edge encoder on
distinct bond lengths only, glibc keeping freed memory (:mod:`kappaflow.allocator`, ≈12 %), one flat
buffer for Adam (:mod:`kappaflow.training.flat`, ≈4 %), manual optimisation in Lightning (≈6 %),
``F.linear`` instead of ``Module.__call__`` for matgl's linear layers.
Evaluated and not adopted (interleaved A/B): ``torch.compile`` (inductor, ``dynamic=True``) took
≈64 s to compile and then ran ≈20 % slower than eager at batch 8; bf16 autocast; ``gc.freeze``
(no change in training); calling the optimizer and ``loss.backward`` past Lightning's wrappers (within
noise); ``torch.use_deterministic_algorithms`` costs nothing measurable on CPU; a second intra-op
thread does not help one job, while two single-thread jobs side by side each keep most of their rate
(so the training rules' ``threads: 1`` is the faster way to use 2 cores). Run-to-run spread on this
VM is ≈±10 %: repeat a measurement before reading a few per cent into it.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import doc
import lightning as pl
import numpy as np
import pandas as pd
import torch
from kappaflow.allocator import retain_freed_memory
from kappaflow.graphs import (
    GRAPH_SCHEMA,
    GraphSet,
    featurize_record,
    graph_set_from_table,
    structure_to_record,
)
from kappaflow.model import build_kappanet
from kappaflow.quotient import quotient
from kappaflow.training.data import GraphLoader
from kappaflow.training.flat import FlatParameters
from kappaflow.training.module import KappaModule, mape_kappa
from kappaflow.training.scaling import TargetScaler
from pymatgen.core import Structure
from side_by_side import run_side_by_side

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
PRETRAINED = MIRROR / "pretrained" / "MEGNet-MP-2018.6.1-Eform"


def graph_set(rows: list[tuple[str, Structure, float]]) -> GraphSet:
    """GraphSet of (id, structure, κ) rows, cutoff 4 Å."""
    import pyarrow as pa

    records = [
        featurize_record({"id": i, "dataset": "bench", "target": k, **structure_to_record(s)}, 4.0) for i, s, k in rows
    ]
    table = pa.Table.from_pylist(records, schema=GRAPH_SCHEMA).replace_schema_metadata({"kappaflow.cutoff": "4.0"})
    return graph_set_from_table(table)


def mirror_structures(name: str, limit: int | None) -> tuple[list[str], list[Structure], np.ndarray, int]:
    """Ids, structures and κ of the first ``limit`` materials of the mirror's ``name`` set (``Dataset1``,
    ``Dataset2`` or ``AFLOW``), and how many the whole set has."""
    if name == "AFLOW":
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        labels = pd.read_csv(MIRROR / "aflow_agl" / "labels.csv")
        head = labels.head(limit)
        structures = [Structure.from_file(MIRROR / "aflow_agl" / "cif" / f"{entry}.cif") for entry in head.entry]
        return list(head.entry), structures, head.agl_thermal_conductivity_300K.to_numpy(float), len(labels)
    labels = pd.read_csv(MIRROR / "hq" / f"{name.lower()}.csv")
    rows = [(mp_id, MIRROR / "mp" / "structures" / f"{mp_id}.json", kappa)
            for mp_id, kappa in zip(labels.mp_id, labels.ltc_wmk)]
    rows = [row for row in rows if row[1].is_file()]
    structures = [Structure.from_dict(json.loads(path.read_text())) for _, path, _ in rows[:limit]]
    return [row[0] for row in rows[:limit]], structures, np.array([row[2] for row in rows[:limit]]), len(rows)


def aflow_set(n: int) -> GraphSet:
    ids, structures, kappa, _ = mirror_structures("AFLOW", n)
    return graph_set(list(zip(ids, structures, kappa)))


def dataset1_set() -> GraphSet:
    ids, structures, kappa, _ = mirror_structures("Dataset1", None)
    return graph_set(list(zip(ids, structures, kappa)))


def bare_loop(graphs: GraphSet, batch_size: int, epochs: int, profile: bool) -> float:
    """Structures/s of forward + backward + Adam over pre-collated resident batches of quotient graphs."""
    graphs = quotient(graphs)  # as GraphLoader
    model = build_kappanet(PRETRAINED).train()
    scaler = TargetScaler.fit(graphs.targets, "log10_kappa_plus_1")
    flat = FlatParameters.of(model.parameters())  # as KappaModule
    optimizer = torch.optim.Adam([flat.param], lr=1e-3, fused=True)
    kappa = torch.as_tensor(graphs.targets, dtype=torch.float32)
    order = np.random.default_rng(0).permutation(len(graphs))
    batches = [(graphs.batch(order[i:i + batch_size]), kappa[order[i:i + batch_size]])
               for i in range(0, len(graphs), batch_size)]

    def epoch() -> None:
        for batch, target in batches:
            flat.zero_grad()
            mape_kappa(model(batch), target, scaler).backward()
            optimizer.step()

    epoch()  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    rate = epochs * len(graphs) / (time.perf_counter() - start)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            epoch()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return rate


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (batches only, validation excluded)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)


def epoch_rate(module: KappaModule, train_loader, val_loader, n: int, epochs: int) -> float:
    """Structures/s of the training part of each epoch when Lightning fits ``module`` on ``n`` structures for a
    warm-up epoch and ``epochs`` timed ones (validation: ``val_loader``'s first batch)."""
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=epochs + 1, accelerator="cpu", devices=1, logger=False, callbacks=[timer],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(module, train_loader, val_loader)
    return n / float(np.mean(timer.times[1:]))  # first epoch is warm-up


def lightning_loop(graphs: GraphSet, batch_size: int, epochs: int) -> float:
    """Structures/s of the training part of each epoch in kappaflow's Lightning loop."""
    pl.seed_everything(1, verbose=False)
    module = KappaModule(build_kappanet(PRETRAINED), TargetScaler.fit(graphs.targets, "log10_kappa_plus_1"),
                         lr=1e-3, lr_decay_epochs=1000, lr_min_factor=0.01, collapse_patience=None,
                         loss="mape_kappa", grad_clip_norm=None)
    return epoch_rate(module, GraphLoader(graphs, batch_size, shuffle=True, seed=1),
                      GraphLoader(graphs.subset(np.arange(8)), 8), len(graphs), epochs)


#: Graphs per set and the 80/20 split: training structures per epoch of each run.
PAPER_SIZES = {"AFLOW": 3255, "Dataset1": 95, "Dataset2": 143}
SEEDS, EPOCHS, VAL_FRACTION = 9, 300, 0.2


def paper_configuration(aflow_rate: float, hq_rate: float, parallel_jobs: int = 1) -> str:
    """Training wall time of the paper configuration at the given Lightning rates (structures/s).

    Per seed: steps I and II on Dataset1, Dataset2, MIX and AFLOW, stage 1 on AFLOW, step III stage 2
    on Dataset1, Dataset2 and MIX; 300 epochs each. AFLOW runs go at the stage-1 rate, the others at
    the Dataset1 rate. Validation passes (20 % of each set, forward only) are not counted.
    ``parallel_jobs``: that many jobs side by side, each at the given rates (pass the per-job rates
    measured side by side, :func:`side_by_side`), which is how the workflow runs (training rules
    use one thread, ``--cores N`` runs N of them).
    """
    train = {name: round(n * (1 - VAL_FRACTION)) for name, n in PAPER_SIZES.items()}
    hq = train["Dataset1"] + train["Dataset2"]  # MIX = both training parts
    aflow_per_epoch = 3 * train["AFLOW"]  # steps I, II, stage 1
    hq_per_epoch = 3 * 2 * hq  # steps I, II, III on Dataset1 + Dataset2 + MIX
    seconds = SEEDS * EPOCHS * (aflow_per_epoch / aflow_rate + hq_per_epoch / hq_rate)
    structures = SEEDS * EPOCHS * (aflow_per_epoch + hq_per_epoch)
    return (f"paper configuration ({SEEDS} seeds x 300 epochs, {structures / 1e6:.1f} M training structure passes): "
            f"{seconds / 3600:.1f} h as one job at a time at these rates"
            + (f", {seconds / parallel_jobs / 3600:.1f} h as {parallel_jobs} single-thread jobs side by side"
               if parallel_jobs > 1 else ""))


def _side_by_side_job(n_aflow: int, batch_size: int, epochs: int, barrier, results) -> None:
    """One single-thread job: build the sets, wait for the others, time both Lightning loops."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    retain_freed_memory()
    sets = (aflow_set(n_aflow), dataset1_set())
    barrier.wait()
    results.put(tuple(lightning_loop(graphs, batch_size, epochs) for graphs in sets))


def side_by_side(jobs: int, n_aflow: int, batch_size: int, epochs: int) -> tuple[float, float]:
    """Summed Lightning rates (AFLOW, Dataset1) of ``jobs`` single-thread training jobs run at once.

    The machine's training throughput as the workflow uses it: training rules take one thread and
    ``--cores N`` runs N of them side by side.
    """
    rates = run_side_by_side(_side_by_side_job, [(n_aflow, batch_size, epochs)] * jobs)
    return sum(r[0] for r in rates), sum(r[1] for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--aflow", type=int, default=500, help="AFLOW structures for stage 1")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--jobs", type=int, default=2,
                        help="also time this many single-thread jobs side by side (1: skip); used in the extrapolation")
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    parser.add_argument("--doc", type=Path, help="also write this benchmark's section of this markdown file")
    args = parser.parse_args()
    run = doc.Run()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    retain_freed_memory()  # as kappaflow.training.runner does
    sets = {"stage1 (AFLOW)": aflow_set(args.aflow), "stage2 (Dataset1)": dataset1_set()}
    results = {}
    for name, graphs in sets.items():
        bare = bare_loop(graphs, args.batch_size, args.epochs, args.profile and name.startswith("stage1"))
        lit = lightning_loop(graphs, args.batch_size, args.epochs)
        results[name] = {"n": len(graphs), "bare_structures_per_s": round(bare, 1),
                         "lightning_structures_per_s": round(lit, 1)}
        print(f"{name}: {len(graphs)} structures, batch {args.batch_size}, {args.threads} threads: "
              f"bare loop {bare:.0f}/s, Lightning loop {lit:.0f}/s (Lightning/bare {lit / bare:.2f})", flush=True)
    if args.jobs > 1:
        aflow, hq = side_by_side(args.jobs, args.aflow, args.batch_size, args.epochs)
        results["side_by_side"] = {"jobs": args.jobs, "aflow_structures_per_s": round(aflow, 1),
                                   "dataset1_structures_per_s": round(hq, 1)}
        print(f"{args.jobs} single-thread Lightning jobs side by side: stage1 (AFLOW) {aflow:.0f}/s, "
              f"stage2 (Dataset1) {hq:.0f}/s in total", flush=True)
        print(paper_configuration(aflow / args.jobs, hq / args.jobs, parallel_jobs=args.jobs))
    print(json.dumps(results))
    one_job = paper_configuration(results["stage1 (AFLOW)"]["lightning_structures_per_s"],
                                  results["stage2 (Dataset1)"]["lightning_structures_per_s"])
    print(one_job)
    if args.doc:
        write_doc(args, run, results, one_job)


def write_doc(args: argparse.Namespace, run: doc.Run, results: dict[str, dict], one_job: str) -> None:
    """This run's section of ``args.doc``: every rate relative to the same stage's bare loop."""
    pair = results.get("side_by_side")
    header = ["stage", "structures", "bare loop /s (baseline)", "Lightning loop /s", "Lightning vs bare"]
    if pair:
        header += [f"{args.jobs} single-thread Lightning jobs side by side, summed /s",
                   "side by side vs bare"]
    rows = []
    stages = (("stage1 (AFLOW)", "aflow_structures_per_s"), ("stage2 (Dataset1)", "dataset1_structures_per_s"))
    for name, key in stages:
        stage = results[name]
        bare, lit = stage["bare_structures_per_s"], stage["lightning_structures_per_s"]
        row = [name, stage["n"], f"{bare:,.0f}", f"{lit:,.0f}", doc.ratio(lit, bare)]
        if pair:
            row += [f"{pair[key]:,.0f}", doc.ratio(pair[key], bare)]
        rows.append(row)
    lines = [
        f"Batch {args.batch_size}; bare and Lightning loops in one job with {args.threads} thread(s), "
        f"{args.epochs} timed epochs after a warm-up epoch; stage 1 on the first {args.aflow} mirror AFLOW "
        f"structures, stage 2 on Dataset1; flush denormal {args.flush_denormal}. The bare loop (pre-collated "
        "resident batches, forward + backward + Adam, no Lightning) is the baseline.",
        "",
        doc.table(header, rows),
        "",
        f"- at the Lightning rates of one job: {one_job}",
    ]
    if pair:
        per_job = (pair["aflow_structures_per_s"] / args.jobs, pair["dataset1_structures_per_s"] / args.jobs)
        lines.append(f"- at the per-job Lightning rates of the {args.jobs} jobs side by side: "
                     + paper_configuration(*per_job, parallel_jobs=args.jobs))
    doc.write_section(args.doc, "train_throughput", "Training (`benchmarks/train_throughput.py`)",
                      "\n".join(lines), run)


if __name__ == "__main__":
    main()
