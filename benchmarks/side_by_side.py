"""Run benchmark jobs as separate processes started together (how ``--cores N`` runs single-thread rules)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any


def run_side_by_side(job: Callable[..., None], job_args: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Start one spawned process per entry of ``job_args``; return what each put on its queue.

    ``job(*args, barrier, results)`` must prepare its work, call ``barrier.wait()`` so that all jobs
    start timing together, then ``results.put(...)`` once. Results come back in finishing order.
    """
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(len(job_args)), context.Queue()
    procs = [context.Process(target=job, args=(*args, barrier, results)) for args in job_args]
    for proc in procs:
        proc.start()
    collected = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return collected
