"""retain_freed_memory: large freed buffers stay in the heap for reuse instead of going back to the kernel;
freeze_long_lived_objects: objects alive at the call leave the collector's generations."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import numpy as np
import pytest
from kappaflow.allocator import freeze_long_lived_objects, retain_freed_memory


class MallInfo2(ctypes.Structure):
    """glibc ``struct mallinfo2``."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_buffer_stays_in_the_heap():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    assert retain_freed_memory()
    size = 24 * 1024 * 1024
    mapped_before = libc.mallinfo2().hblkhd
    buffer = np.ones(size // 8)
    assert libc.mallinfo2().hblkhd == mapped_before  # served from the heap, not a fresh mmap
    del buffer
    assert libc.mallinfo2().fordblks >= size  # kept for reuse, not trimmed


def test_frozen_objects_leave_the_collected_generations():
    import gc

    class Node:
        pass

    alive = Node()
    assert gc.is_tracked(alive) and any(obj is alive for obj in gc.get_objects())
    try:
        assert freeze_long_lived_objects() > 0
        assert not any(obj is alive for obj in gc.get_objects())  # skipped by every collection
        later = Node()
        assert any(obj is later for obj in gc.get_objects())  # new objects are collected as usual
    finally:
        gc.unfreeze()
