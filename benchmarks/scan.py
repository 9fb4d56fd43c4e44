"""Scan throughput: batched ensemble prediction vs a naive per-structure loop, on the screening set.

    python benchmarks/scan.py [--models results/models/stepIII/MIX] [--threads 2] [--naive 60] [--doc PATH]

Times the scan path of one chunk (read the mirror JSON, validate, featurize, batch through every
model of a 9-model ensemble, mean/std) on the 1,042-structure screening set, and a naive loop
on ``--naive`` random structures, in the same process: per structure, read and validate it, then
per model do what ``matgl``'s ``MEGNet.predict_structure`` does (``Structure2Graph`` builds the
graph, the model runs on that one graph under ``torch.no_grad``). Without trained models, 9 randomly
initialised KappaNets of the real architecture (pretrained MEGNet's shape, paper head) stand in: the
cost is the same.
Prints structures/s, the ratio, peak memory (max RSS) and the projected cluster wall time of a
150,000-structure scan with the configured 3 ensembles (27 models). With ``--doc PATH`` it also writes
its section of that markdown file (:mod:`doc`), every speed relative to the naive loop's.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
import warnings
from pathlib import Path

import doc
import torch
from kappaflow.validation import Limits
from side_by_side import run_side_by_side

REPO = Path(__file__).resolve().parents[1]
MIRROR = (REPO.parent / "shared" / "data").resolve()
STRUCTURES = MIRROR / "mp" / "structures"
LIMITS = Limits(cutoff=4.0, min_distance=0.5)
STARTUP_S = 20.0  # assumed start-up of a chunk job (imports, model loading), for the projection


def ensemble(models_dir: str | None, n_models: int):
    """The trained ensemble at ``models_dir``, or ``n_models`` random KappaNets of the real architecture."""
    from kappaflow.backbone import read_init_args
    from kappaflow.model import build_kappanet
    from kappaflow.predict import Ensemble, load_ensemble
    from kappaflow.training.scaling import TargetScaler
    from kappaflow.trust import Trust

    if models_dir:
        return load_ensemble(models_dir, "cpu")
    args = read_init_args(MIRROR / "pretrained" / "MEGNet-MP-2018.6.1-Eform")
    models = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        models.append(build_kappanet(None, init_args=args).eval())
    untrusted = Trust(None, None, None, "random models", "random models")
    return Ensemble("random", [f"run{i}" for i in range(n_models)], models, [TargetScaler(1.0, 0.5)] * n_models,
                    torch.device("cpu"), None, untrusted)


def naive_predict(model, scaler, structure) -> float:
    """κ of one structure by one model as a user would write it (``MEGNet.predict_structure``'s recipe).

    matgl's ``Structure2Graph`` builds the graph on every call, then the model runs on that single
    graph under ``torch.no_grad``.
    """
    from kappaflow.graphs import ELEMENT_TYPES, GraphBatch
    from matgl.ext.pymatgen import Structure2Graph

    g, lattice, state_attr = Structure2Graph(element_types=ELEMENT_TYPES, cutoff=4.0).get_graph(structure)
    batch = GraphBatch(
        node_type=g.node_type, pos=g.frac_coords @ lattice[0], edge_index=g.edge_index,
        pbc_offshift=g.pbc_offset @ lattice[0], batch=torch.zeros(g.num_nodes, dtype=torch.long),
        state_attr=torch.tensor(state_attr, dtype=torch.float32).reshape(1, -1), num_graphs=1,
    )
    with torch.no_grad():
        return float(scaler.inverse(model(batch)).item())


def batched_scan(rows, models, batch_size: int) -> tuple[int, int, float]:
    """The scan path of one chunk on ``rows``: (predicted, rejected, seconds to read+validate+featurize)."""
    from kappaflow.predict import ensemble_outputs, graph_set, mean_std
    from kappaflow.scan import chunk_records, chunk_structures

    start = time.perf_counter()
    records, rejected = chunk_records(rows, chunk_structures(rows["mp_id"], "mirror", STRUCTURES), LIMITS)
    graphs = graph_set(records, 4.0)
    feat_s = time.perf_counter() - start
    mean_std(ensemble_outputs(models, graphs, batch_size)[0])
    return len(records), len(rejected), feat_s


def _chunk_job(rows, models_dir: str | None, n_models: int, batch_size: int, barrier, results) -> None:
    """One single-thread chunk job: load the ensemble, warm up, wait for the others, scan ``rows``."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from kappaflow.allocator import freeze_long_lived_objects, retain_freed_memory

    retain_freed_memory()
    models = ensemble(models_dir, n_models)
    freeze_long_lived_objects()
    batched_scan(rows.head(8), models, batch_size)
    barrier.wait()
    start = time.perf_counter()
    batched_scan(rows, models, batch_size)
    results.put(time.perf_counter() - start)


def side_by_side_rate(rows, args) -> float:
    """Structures/s of ``args.jobs`` single-thread chunk jobs (processes) splitting ``rows``, started together.

    This is how the scan rule uses a machine: one thread per chunk job, as many jobs as cores.
    """
    parts = [(rows.iloc[i :: args.jobs], args.models, args.n_models, args.batch_size)  # alike mixes of sizes
             for i in range(args.jobs)]
    wall = max(run_side_by_side(_chunk_job, parts))
    return len(rows) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="trained ensemble folder (default: 9 random models)")
    parser.add_argument("--n-models", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive", type=int, default=60, help="structures timed in the naive loop")
    parser.add_argument("--chunk-size", type=int, default=2000, help="for the projection")
    parser.add_argument("--jobs", type=int, default=2,
                        help="also time this many single-thread chunk jobs side by side (1: skip)")
    parser.add_argument("--parallel-jobs", type=int, default=20, help="for the projection")
    parser.add_argument("--doc", type=Path, help="also write this benchmark's section of this markdown file")
    args = parser.parse_args()
    run = doc.Run()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    from kappaflow.allocator import freeze_long_lived_objects, retain_freed_memory
    from kappaflow.scan import chunk_structures, read_screening_set
    from kappaflow.validation import InvalidRow, check_structure, parse_structure_json

    models = ensemble(args.models, args.n_models)
    retain_freed_memory()  # as the scan rule does
    freeze_long_lived_objects()
    rows = read_screening_set(MIRROR / "mp" / "screening_set.csv")
    batched_scan(rows.head(8), models, args.batch_size)  # warm-up (first-call allocations, lazy imports)

    start = time.perf_counter()
    n_records, n_rejected, feat_s = batched_scan(rows, models, args.batch_size)
    batched_s = time.perf_counter() - start
    n = len(rows)
    batched_rate = n / batched_s
    jobs_rate = side_by_side_rate(rows, args) if args.jobs > 1 else None

    naive_rows = rows.sample(min(args.naive, len(rows)), random_state=0)  # representative sizes
    start = time.perf_counter()
    for mp_id in naive_rows["mp_id"]:  # one structure at a time, as MEGNet.predict_structure does it
        try:
            structure = parse_structure_json(chunk_structures([mp_id], "mirror", STRUCTURES).get(mp_id))
            check_structure(structure, LIMITS)
        except InvalidRow:
            structure = None  # rejected, as in the batched path
        if structure is not None:
            [naive_predict(model, scaler, structure) for model, scaler in zip(models.models, models.scalers)]
    naive_s = time.perf_counter() - start
    naive_rate = len(naive_rows) / naive_s

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_structure_27 = 3 * batched_s / n  # the scan runs 3 ensembles (Dataset1, Dataset2, MIX)
    chunk_s = args.chunk_size * per_structure_27 + STARTUP_S
    n_chunks = math.ceil(150_000 / args.chunk_size)
    waves = math.ceil(n_chunks / args.parallel_jobs)
    print(f"threads={args.threads} models={len(models)} structures={n} predicted={n_records} rejected={n_rejected}")
    print(f"batched: {batched_s:.2f} s total, of which read+validate+featurize {feat_s:.2f} s")
    print(f"batched: {batched_rate:.1f} structures/s ({len(models)}-model ensemble, featurization included)")
    print(f"naive:   {naive_rate:.1f} structures/s (per-structure loop, {len(naive_rows)} random structures)")
    print(f"ratio:   {batched_rate / naive_rate:.1f}x")
    if jobs_rate is not None:
        print(f"side by side: {jobs_rate:.1f} structures/s ({args.jobs} single-thread chunk jobs, "
              f"{jobs_rate / naive_rate:.1f}x the naive loop)")
    print(f"peak memory (max RSS, whole screening set as one chunk): {peak_mib:.0f} MiB")
    projection = (f"projection, 150,000 structures x 27 models: {n_chunks} chunks of {args.chunk_size}, "
                  f"{chunk_s / 60:.1f} min per chunk job; {args.parallel_jobs} parallel jobs: "
                  f"{waves * chunk_s / 60:.0f} min wall; one job: {150_000 * per_structure_27 / 3600:.1f} h")
    print(projection)
    sys.stdout.flush()
    if args.doc:
        speeds = [(f"batched scan, one job with {args.threads} thread(s)", n, batched_s),
                  *([(f"{args.jobs} single-thread chunk jobs side by side (as the scan rule runs chunks)",
                      n, n / jobs_rate)] if jobs_rate is not None else []),
                  ("naive per-structure loop (baseline), random structures", len(naive_rows), naive_s)]
        body = "\n".join([
            f"Screening set of the mirror: {n} structures, {n_records} predicted, {n_rejected} rejected; "
            f"ensemble: {args.models or f'{args.n_models} randomly initialised KappaNets (same cost)'} "
            f"({len(models)} models), batch size {args.batch_size}. Each structure is read, validated, "
            "featurized and run through every model; the naive loop does it one structure and one model at "
            "a time, with matgl's `Structure2Graph` per call (`MEGNet.predict_structure`'s recipe).",
            "",
            doc.table(["path", "structures", "wall s", "structures/s", "speed vs naive loop"],
                      [[name, count, f"{wall:.2f}", f"{count / wall:.1f}",
                        doc.ratio(count / wall, naive_rate)] for name, count, wall in speeds]),
            "",
            f"- of the batched scan's {batched_s:.2f} s, read + validate + featurize took {feat_s:.2f} s",
            f"- peak memory (max RSS of this process, whole screening set as one chunk): {peak_mib:.0f} MiB",
            f"- {projection} (from the batched rate, 3 ensembles, {STARTUP_S:.0f} s start-up per chunk job "
            "assumed)",
        ])
        doc.write_section(args.doc, "scan", "Scan (`benchmarks/scan.py`)", body, run)


if __name__ == "__main__":
    main()
