"""Read a job's file and hash it on a second thread while the command is still starting.

Why: between the command line being parsed and the read stage, the process spends ~0.3 s
on one core importing SQLAlchemy and the engine and opening the database. Reading a 220 MB
file and hashing it (~0.35 s of CPU, almost all of it outside the GIL) fits in that gap;
the read stage, which keeps both cores busy parsing, then starts at once and no longer
reads and hashes the file beside the parse. The hash is also that of exactly the bytes
parsed, where two separate reads could see two versions of a file being replaced.

With ``parse``, the same thread then parses a CSV file into Arrow columns (``csvparse``:
pyarrow only, no pandas), while the main thread is still importing pandas and the engine:
that parse keeps both cores busy outside the GIL, and one of them was idle there. Light on
purpose otherwise (standard library only): it runs before pandas is needed. Anything
unusual (a file over the size limit, not a regular file, unreadable) is left to the
engine's own read, which names the problem: ``ready()`` is then False.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csvimport.csvparse import ParsedCsv


class Prefetch:
    """The bytes and SHA-256 of ``path``, read and hashed on a thread started at once; with
    ``parse``, a CSV file is parsed there too, between the read and the hash."""

    def __init__(self, path: Path, max_bytes: int, parse: bool = False) -> None:
        self._path, self._max_bytes, self._parse = path, max_bytes, parse
        self._data: bytes | None = None
        self._size: int | None = None  # with the head: known once the bytes are read
        self._head = b""
        self._digest: str | None = None
        self._parsed: ParsedCsv | None = None
        self._error: Exception | None = None
        self._read = threading.Event()
        self._parse_done = threading.Event()
        if parse:
            # Imported here, on the caller's thread: the caller goes on to import the reader,
            # which imports it too, and two threads importing one module at once can meet
            # in Python's import locks (a partly initialised module, an ImportError).
            import csvimport.csvparse  # noqa: F401
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        data = None
        try:
            data = self._data = self._bytes()
            if data is not None:
                self._size, self._head = len(data), data[:8]
        finally:
            self._read.set()  # whatever happened: a reader waiting on ``ready`` goes on
        try:
            if data is not None and self._parse:
                self._parse_csv(data)
        finally:
            self._parse_done.set()
        if data is not None:  # the thread's own reference: ``take`` may come at any time
            self._digest = hashlib.sha256(data).hexdigest()

    def _parse_csv(self, data: bytes) -> None:
        """Parse a CSV file's bytes (a workbook is left to its own reader). What the parse
        raises (``FileRejected`` for an undecodable file) is kept for ``parsed`` to raise on
        the reader's thread, as a parse in place would have."""
        from csvimport import csvparse

        try:
            if not csvparse.is_csv(self._path, self._head):
                return
            self._parsed = csvparse.parse_csv(data)
        except Exception as exc:
            self._error = exc
        else:
            self._data = None  # the parse stands for them (``parsed`` waits, ``take`` fails)

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
        return self._size is not None

    @property
    def size(self) -> int:
        return self._known()

    @property
    def head(self) -> bytes:
        """The first bytes (a file's magic number)."""
        self._known()
        return self._head

    def _known(self) -> int:
        """The size read (waits for the read); raises when nothing was read ahead."""
        self._read.wait()
        if self._size is None:
            raise RuntimeError("no prefetched bytes: ready() is False")
        return self._size

    def parsed(self) -> ParsedCsv | None:
        """The file parsed as a CSV on this thread, handed over once (waits for the parse);
        None when it was not (``parse`` not asked, not a CSV, not read ahead). Raises what
        the parse raised."""
        self._parse_done.wait()
        error, self._error = self._error, None
        if error is not None:
            raise error
        parsed, self._parsed = self._parsed, None
        return parsed

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
        self._known()
        if self._data is None:
            raise RuntimeError("the prefetched bytes were taken, or the parse stands for them")
        return self._data
