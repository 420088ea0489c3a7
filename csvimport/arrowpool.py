"""Which allocator Arrow's buffers come from: jemalloc for a job, the C library's in phases
that make and drop same-sized buffers chunk after chunk.

Why: jemalloc with a zero decay time hands freed pages back to the OS at once, which halved
the peak of a million-row job (``configure``). The price is that every fresh buffer is
faulted in again, page by page. The plan writer makes and drops ~18 MB of line text per
100k operations: at a million rows that was ~180k page faults (~0.25 s of CPU) for memory
it had just freed. The C library's allocator keeps such blocks in its heap and hands them
out again, so the writer runs with the system pool (``reusing``); the job's memory peak is
in the planner, before it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

import pyarrow

from csvimport.processwide import Temporary


def configure() -> None:
    """Hand freed Arrow memory back to the OS at once.

    A million-row file passes through several short-lived Arrow buffers; the default pool
    (mimalloc) keeps freed pages, which doubled the peak resident size in ``make bench``.
    jemalloc with a zero decay time returns them immediately (1.9 GB -> 0.95 GB at 1M rows).
    """
    try:
        pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
        pyarrow.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pyarrow.ArrowNotImplementedError):
        pass  # a pyarrow build without jemalloc: keep its default pool


# The system pool as Arrow's default while any caller needs it. Safe whatever runs
# meanwhile: a buffer goes back to the pool it came from.
reusing = Temporary(
    pyarrow.default_memory_pool,
    pyarrow.set_memory_pool,
    lambda _saved: pyarrow.system_memory_pool(),
).changed


def release_heap() -> None:
    """Give the C library's free heap memory back to the OS (glibc's ``malloc_trim``).

    Why: reading an org from its tables goes through millions of short-lived Python objects
    (the database driver's rows). Once they are freed, glibc keeps their pages in its heap,
    scattered, and the job's resident size stays ~0.2 GB higher through the snapshot cache's
    encoding and the planner's memory peak: a cold 1M-user dry run peaked at 2,061 MiB.
    Where the C library has no ``malloc_trim``, nothing happens."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim
