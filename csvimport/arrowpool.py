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

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow

_lock = threading.Lock()
_users = 0
_saved: pyarrow.MemoryPool | None = None


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


@contextmanager
def reusing() -> Iterator[None]:
    """The system pool as Arrow's default inside. The switch is process-wide, so the first
    user in saves the pool and the last one out restores it (jobs of a worker may overlap
    in threads). Safe whatever runs meanwhile: a buffer goes back to the pool it came from."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = pyarrow.default_memory_pool()
            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                pyarrow.set_memory_pool(_saved)
                _saved = None
