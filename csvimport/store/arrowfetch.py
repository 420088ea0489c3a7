"""Bulk reads of text columns into Arrow, for the snapshot's million-row selects.

Why: the DBAPI path builds one Python tuple per row and one Python string per cell, which at
a million users costs more than everything the planner does with them.

- PostgreSQL: the ADBC driver streams the result as Arrow columns from C (binary COPY). Its
  connection is opened in autocommit and closed after each select: a cached or transactional
  one holds a transaction open (which blocked ``DROP SCHEMA`` in the tests).
- SQLite: not through ADBC. Its driver links a second copy of SQLite into the process, and two
  copies in one process do not see each other's POSIX locks (SQLite's own warning; a batch
  worker running many jobs saw "database disk image is malformed"). Instead SQLite returns the
  whole result as one string, or one per column (cells joined by U+001F), and Arrow splits
  it: a few Python objects in all instead of one per cell. A cell that itself holds a
  separator makes the split ambiguous, so the reader checks the count and then falls back to
  the plain path.
- SQLite's packed selects run one at a time in a process (``_SQLITE_SELECTS``); Arrow splits
  one result while SQLite builds the next. Two of these selects on two threads ran slower
  together than one after the other (a 1M-user org's users, licenses and numbers: 4.9 s
  against 3.5 s), while plain scans ran in parallel, so what they contend for is inside SQLite
  (my guess: its allocator's process-wide mutex, taken by every per-row ``printf``).
  Serialized, the snapshot's read of that org fell from 7.7-8.7 s to 4.8-4.9 s.
- Both read committed state; the plan carries the org's state version and apply refuses a plan
  whose org moved on, so a write racing with a snapshot is caught where it matters.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc
from sqlalchemy import Connection, func, literal_column, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from csvimport.csvparse import utf8_cell

SEPARATOR = "\x1f"  # between the cells of a row
_SQLITE_SELECTS = threading.Lock()  # one packed select at a time in this process (see above)


def fetch_frame(conn: Connection, stmt: Any) -> pd.DataFrame | None:
    """The select's rows as a frame of ``str`` columns, or None to use the plain path."""
    backend = conn.engine.url.get_backend_name()
    if backend == "postgresql":
        return _postgres(conn, stmt)
    if backend == "sqlite":
        return _sqlite_packed(conn, stmt)
    return None


def _frame(names: list[str], columns: list[pyarrow.Array]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            n: pd.Series(c.cast(pyarrow.large_string()), dtype="str")
            for n, c in zip(names, columns, strict=True)
        }
    )


def _postgres(conn: Connection, stmt: Any) -> pd.DataFrame | None:
    try:
        import adbc_driver_postgresql.dbapi as pg_adbc
    except ImportError:
        return None
    url = make_url(conn.engine.url).set(drivername="postgresql")
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    try:
        adbc = pg_adbc.connect(url.render_as_string(hide_password=False), autocommit=True)
    except Exception:  # no ADBC connection possible: keep the DBAPI path
        return None
    try:
        with adbc.cursor() as cursor:
            cursor.execute(sql)
            table = cursor.fetch_arrow_table()
    finally:
        adbc.close()
    return _frame(table.column_names, [c.combine_chunks() for c in table.columns])


def _sqlite_packed(conn: Connection, stmt: Any) -> pd.DataFrame | None:
    """All cells as UTF-8 text built by SQLite (joined by U+001F), split by Arrow: Python
    receives a few bytes objects instead of one object per cell.

    A narrow select gets one ``group_concat`` per column, each giving a column outright. A
    wide one gets one string of every row's cells (one ``printf`` per row: NULL prints as "",
    and a chain of ``||`` allocates a string per operator; 1M users: 5.2 s -> 3.4 s of SQLite
    time), from which every column is taken. Per column, the 1M-user org's 2.9M license rows
    took 0.93 s of SQLite time against 1.37 s by row; its 20-column users 2.45 s against 1.5 s.

    The row count comes with it: a cell that holds the separator itself adds a cell (and per
    column, a NULL is left out), so the split is trusted only when it gives exactly rows x
    columns cells."""
    sub = stmt.order_by(None).subquery()  # frames are keyed: SQLite need not sort a million rows
    names = [c.name for c in sub.columns]
    width = len(names)
    by_column = width <= _BY_COLUMN_MAX
    packed: list[Any] = (
        list(sub.columns)
        if by_column
        else [func.printf(SEPARATOR.join(["%s"] * width), *sub.columns)]
    )
    separator: Any = literal_column("char(31)")
    query = select(func.count(), *[func.group_concat(p, separator) for p in packed])
    try:
        count, blobs = _as_bytes(conn, query.select_from(sub))
    except OperationalError:  # over SQLite's string limit (1 GB): the plain path copes
        return None
    if not count:
        return _frame(names, [pyarrow.array([], type=pyarrow.large_string())] * width)
    per_blob = count if by_column else count * width
    columns = [c for c in map(_cells, blobs) if c is not None and len(c) == per_blob]
    if len(columns) != len(blobs):
        return None  # not UTF-8, or a cell holds a separator itself
    if not by_column:
        flat = columns[0]
        columns = [
            flat.take(pyarrow.array(np.arange(j, count * width, width))) for j in range(width)
        ]
    return _frame(names, columns)


_BY_COLUMN_MAX = 3  # columns up to which a select is packed column by column


def _cells(blob: bytes) -> pyarrow.Array | None:
    """The cells of one packed text, or None when it is not UTF-8 (SQLite stores whatever
    bytes it was given as text; the plain path then decodes it as sqlite3 does)."""
    text = utf8_cell(blob)
    return None if text is None else pc.list_flatten(pc.split_pattern(text, SEPARATOR))


def _as_bytes(conn: Connection, query: Any) -> tuple[int, list[bytes]]:
    """Run a one-row (count, text, ...) query with SQLite handing the texts over as bytes: no
    decoding into a Python str only to encode it again for Arrow."""
    raw: Any = conn.connection.dbapi_connection
    previous = raw.text_factory
    raw.text_factory = bytes
    try:
        with _SQLITE_SELECTS:
            count, *blobs = conn.execute(query).one()
    finally:
        raw.text_factory = previous
    return int(count or 0), [blob or b"" for blob in blobs]
