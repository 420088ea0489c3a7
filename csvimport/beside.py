"""Run one piece of work on the second core while the caller goes on.

Why a module: the engine overlaps Arrow-heavy work (aligning the org's users, building the
plan's JSON payloads) with pandas-heavy work (row checks, org rules). Arrow kernels release
the GIL, but between kernels the worker needs it back, and with CPython's default 5 ms
switch interval it waits up to 5 ms at every kernel boundary while the caller holds it: at
a million rows that starved the worker of seconds. So the interval is shortened while the
two run side by side, and restored after.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from csvimport.processwide import Temporary

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


# The short interval while any caller runs work side by side (see ``processwide``).
_short_switch_interval = Temporary(
    sys.getswitchinterval, sys.setswitchinterval, lambda saved: min(saved, SWITCH_INTERVAL)
).changed


@contextmanager
def beside(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Iterator[Future[T]]:
    """``fn(*args, **kwargs)`` in a worker thread for the duration of the ``with`` body;
    the body gets its future (``result()`` waits for it and re-raises its exception)."""
    with worker() as pool:
        yield pool.submit(fn, *args, **kwargs)


@contextmanager
def worker() -> Iterator[ThreadPoolExecutor]:
    """One worker thread for the duration of the ``with`` body: what the body submits runs
    there one after the other, in the order submitted, while the body goes on."""
    with _short_switch_interval(), ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def in_order(fn: Callable[[T], R], items: Iterable[T], depth: int = 2) -> Iterator[R]:
    """``fn`` of each item on ``depth`` worker threads, results yielded in order, with at
    most ``depth`` items in flight (``Executor.map`` would take them all at once: every
    line of a million-operation plan in memory)."""
    with _short_switch_interval(), ThreadPoolExecutor(max_workers=depth) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
