"""Featurization throughput: kappaflow's pipeline vs matgl's Structure2Graph, and load-back speed.

Usage::

    python benchmarks/featurize.py --structures results/data/aflow.parquet --workers 2 [--doc PATH]

Measures (best of ``--repeats``; the first reads of a file are slower while caches fill):

- ``kappaflow featurize_file``: read the validated parquet, build every graph, write the graph parquet,
  in one process and with a process pool forced (the pipeline uses the pool from 4,000 graphs per process);
- ``matgl Structure2Graph``: ``get_graph`` on ready pymatgen structures (one process; the reference);
- ``read_graph_set + batch()``: load the graph parquet and collate every batch of ``--batch-size``.

With ``--doc PATH`` it also writes its section of that markdown file (:mod:`doc`), with every speed
relative to ``Structure2Graph``'s in the same run.
"""

from __future__ import annotations

import argparse
import functools
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import doc
import numpy as np
import pyarrow.parquet as pq
from kappaflow import graphs
from matgl.ext.pymatgen import Structure2Graph


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Shortest wall time and shortest CPU time of this process over ``repeats`` calls.

    On a shared machine the CPU time is the steadier figure for single-process steps; it does not
    count the work of child processes.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def load_and_batch(path: Path, batch_size: int, shuffle: bool) -> int:
    """Read a graph table and collate one epoch of batches with ``GraphSet.batch``; number of batches."""
    graph_set = graphs.read_graph_set(path)
    order = np.random.default_rng(0).permutation(len(graph_set)) if shuffle else np.arange(len(graph_set))
    return sum(
        1 for start in range(0, len(order), batch_size) if graph_set.batch(order[start : start + batch_size])
    )


def build_graphs(converter: Structure2Graph, structures: list) -> list:
    """matgl's graph of every structure."""
    return [converter.get_graph(structure) for structure in structures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=Path, default=Path("results/data/aflow.parquet"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cutoff", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--doc", type=Path, help="also write this benchmark's section of this markdown file")
    args = parser.parse_args()
    run = doc.Run()

    structures = [graphs.record_to_structure(record) for record in pq.read_table(args.structures).to_pylist()]
    n = len(structures)
    converter = Structure2Graph(element_types=graphs.ELEMENT_TYPES, cutoff=args.cutoff)
    reference = best_time(functools.partial(build_graphs, converter, structures), 1)
    # A training job holds no pymatgen objects: drop them so that the garbage collector's passes
    # over millions of them are not charged to the steps timed below.
    del structures
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "graphs.parquet"
        rows = {
            "kappaflow featurize_file, 1 process, incl. parquet I/O": best_time(
                lambda: graphs.featurize_file(args.structures, out, args.cutoff, 1), args.repeats
            )
        }
        graphs.GRAPHS_PER_PROCESS = 1  # force the pool even below its break-even size
        rows[f"kappaflow featurize_file, pool of {args.workers}, incl. parquet I/O (wall only)"] = best_time(
            lambda: graphs.featurize_file(args.structures, out, args.cutoff, args.workers), args.repeats
        )
        rows["matgl Structure2Graph.get_graph, 1 process, no I/O"] = reference
        rows["read_graph_set only"] = best_time(lambda: graphs.read_graph_set(out), args.repeats)
        for shuffle in (False, True):
            label = f"read_graph_set + batch() × all batches of {args.batch_size}, {'shuffled' if shuffle else 'in order'}"
            rows[label] = best_time(
                functools.partial(load_and_batch, out, args.batch_size, shuffle), args.repeats
            )
        size_mb = out.stat().st_size / 1e6

    print(f"{n} structures from {args.structures} (cutoff {args.cutoff} Å), graph parquet {size_mb:.1f} MB\n")
    print(f"| {'step':<72} | {'wall s':>7} | {'cpu s':>7} | {'structures/s (wall)':>19} |")
    print(f"|{'-' * 74}|{'-' * 9}|{'-' * 9}|{'-' * 21}|")
    for name, (wall, cpu) in rows.items():
        print(f"| {name:<72} | {wall:7.3f} | {cpu:7.3f} | {n / wall:19,.0f} |")
    values = list(rows.values())
    featurize, reference, load, load_batches = values[0], values[2], values[3], values[-1]
    for label, index in (("wall", 0), ("cpu", 1)):
        print(
            f"{label}: featurize_file (1 process) {reference[index] / featurize[index]:.1f}x faster than "
            f"Structure2Graph; loading the parquet into a resident GraphSet {featurize[index] / load[index]:.1f}x "
            f"faster than featurize_file ({reference[index] / load[index]:.1f}x than Structure2Graph); "
            f"load + one epoch of shuffled batches {featurize[index] / load_batches[index]:.1f}x faster than featurize_file"
        )
    if args.doc:
        write_doc(args, run, n, size_mb, rows, reference)


def write_doc(args: argparse.Namespace, run: doc.Run, n: int, size_mb: float,
              rows: dict[str, tuple[float, float]], reference: tuple[float, float]) -> None:
    """This run's section of ``args.doc``: the table, speeds relative to ``Structure2Graph``'s."""
    body = (
        f"{n} structures from `{args.structures}` (cutoff {args.cutoff} Å), graph parquet {size_mb:.1f} MB; "
        f"best of {args.repeats} repeats (`Structure2Graph`: 1), batch size {args.batch_size}. "
        "Speed relative to matgl's `Structure2Graph.get_graph` (the baseline) is its time over the step's time; CPU time is "
        "this process's only, so it is not given for the pool.\n\n"
        + doc.table(
            ["step", "wall s", "cpu s", "structures/s (wall)", "speed vs Structure2Graph (wall)",
             "speed vs Structure2Graph (cpu)"],
            [[name, f"{wall:.3f}", f"{cpu:.3f}", f"{n / wall:,.0f}", doc.ratio(reference[0], wall),
              "—" if "wall only" in name else doc.ratio(reference[1], cpu)]
             for name, (wall, cpu) in rows.items()],
        )
    )
    doc.write_section(args.doc, "featurize", "Featurization and loading (`benchmarks/featurize.py`)",
                      body, run)


if __name__ == "__main__":
    main()
