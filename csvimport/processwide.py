"""A process-wide setting changed for as long as any caller needs it.

Why: two settings of the engine are process-wide and wanted only for a while: CPython's
thread switch interval (short while work runs side by side, ``beside``) and Arrow's default
memory pool (the system allocator while the plan writer makes chunk after chunk,
``arrowpool``). Jobs of a batch worker may overlap in threads, so each caller restoring what
it saw on entry could leave the temporary value for good: the first caller in saves the
setting, the last one out restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

V = TypeVar("V")


class Temporary(Generic[V]):
    """``get`` and ``set`` a process-wide value; ``changed()`` holds ``during(saved)``."""

    def __init__(
        self, get: Callable[[], V], set: Callable[[V], object], during: Callable[[V], V]
    ) -> None:
        self._get, self._set, self._during = get, set, during
        self._lock = threading.Lock()
        self._users = 0
        self._saved: V | None = None

    @contextmanager
    def changed(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                saved = self._get()
                self._saved = saved
                self._set(self._during(saved))
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    self._set(self._saved)
                    self._saved = None
