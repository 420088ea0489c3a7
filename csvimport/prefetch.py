"""Read a job's file and hash it on a second thread while the command is still starting.

Why: between the command line being parsed and the read stage, the process spends ~0.3 s
on one core importing SQLAlchemy and the engine and opening the database. Reading a 220 MB
file and hashing it (~0.35 s of CPU, almost all of it outside the GIL) fits in that gap;
the read stage, which keeps both cores busy parsing, then starts at once and no longer
reads and hashes the file beside the parse. The hash is also that of exactly the bytes
parsed, where two separate reads could see two versions of a file being replaced.

Light on purpose (standard library only): it runs before pandas is needed. Anything
unusual (a file over the size limit, not a regular file, unreadable) is left to the
engine's own read, which names the problem: ``ready()`` is then False.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path


class Prefetch:
    """The bytes and SHA-256 of ``path``, read and hashed on a thread started at once."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path, self._max_bytes = path, max_bytes
        self._data: bytes | None = None
        self._digest: str | None = None
        self._read = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        data = None
        try:
            data = self._data = self._bytes()
        finally:
            self._read.set()  # whatever happened: a reader waiting on ``ready`` goes on
        if data is not None:  # the thread's own reference: ``take`` may come at any time
            self._digest = hashlib.sha256(data).hexdigest()

    def _bytes(self) -> bytes | None:
        """The whole file, or None when the engine must look at it itself."""
        try:
            if not self._path.is_file() or self._path.stat().st_size > self._max_bytes:
                return None
            data = self._path.read_bytes()
        except OSError:
            return None
        return data if len(data) <= self._max_bytes else None

    def ready(self) -> bool:
        """Whether the bytes were read (waits for the read, not for the hash); False when
        the engine must read the file itself."""
        self._read.wait()
        return self._data is not None

    @property
    def size(self) -> int:
        return len(self._held())

    @property
    def head(self) -> bytes:
        """The first bytes (a file's magic number)."""
        return self._held()[:8]

    def take(self) -> bytes:
        """The bytes, handed over: this object keeps no reference to them (the reader can
        free them as soon as it has parsed them)."""
        data = self._held()
        self._data = None
        return data

    def release(self) -> None:
        """Drop the bytes if nobody took them (an XLSX file is read by its own reader)."""
        self._read.wait()
        self._data = None

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes read (waits for the hash)."""
        self._thread.join()
        if self._digest is None:
            raise RuntimeError("the prefetched file was not hashed")
        return self._digest

    def _held(self) -> bytes:
        self._read.wait()
        if self._data is None:
            raise RuntimeError("no prefetched bytes: ready() is False, or they were taken")
        return self._data
