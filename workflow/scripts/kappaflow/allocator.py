"""Process memory settings for long jobs: keep freed tensor memory (glibc), spare the garbage collector.

:func:`retain_freed_memory` avoids page faults per step:

Training and inference allocate and free the same few hundred-kilobyte activation buffers at every
step. glibc serves such sizes with ``mmap`` and hands them back to the kernel on ``free`` (and trims
the heap top), so every step touches fresh pages; on virtual machines each page fault is expensive
(measured here: writing a fresh 350 kB buffer costs ≈12× reusing one). Raising ``M_MMAP_THRESHOLD``
and ``M_TRIM_THRESHOLD`` keeps that memory in the heap for reuse: ≈12 % more training steps per
second on the 2-core machine; the peak memory is unchanged.

:func:`freeze_long_lived_objects` spares Python's full garbage collections the ≈500,000 objects
that imports (torch, pymatgen, matgl) and loaded models leave: parsing a scan chunk's structure
JSON triggers full collections that otherwise walk them all (measured: reading 1,042 structures
took 0.19 s or, with such a collection, 0.46 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

#: ``mallopt`` parameter numbers (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest allowed mmap threshold on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``).
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def retain_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Serve allocations up to 32 MiB from the heap and keep up to ``trim_threshold`` bytes freed.

    Returns ``True`` when glibc accepted both settings, ``False`` where ``mallopt`` is unavailable
    (another C library or platform), in which case nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        log.debug("mallopt unavailable: allocator settings unchanged")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def freeze_long_lived_objects() -> int:
    """Move every object alive now to the collector's permanent generation (``gc.freeze``); their number.

    Call it once a job has imported its modules (and loaded its models): those objects live as long
    as the process, and full collections stop scanning them. Objects created later are collected as
    usual.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
