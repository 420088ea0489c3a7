"""Bulk reads of text columns into Arrow, for the snapshot's million-row selects.

Why: the DBAPI path builds one Python tuple per row and one Python string per cell, which at
a million users costs more than everything the planner does with them.

- PostgreSQL: the ADBC driver streams the result as Arrow columns from C (binary COPY). Its
  connection is opened in autocommit and closed after each select: a cached or transactional
  one holds a transaction open (which blocked ``DROP SCHEMA`` in the tests).
- SQLite: not through ADBC. Its driver links a second copy of SQLite into the process, and two
  copies in one process do not see each other's POSIX locks (SQLite's own warning; a batch
  worker running many jobs saw "database disk image is malformed"). Instead SQLite returns the
  whole result as one string (every cell followed by U+001F) and Arrow splits it: one
  Python object in all instead of one per cell. A cell that itself holds a separator makes the
  split ambiguous, so the reader checks the count and then falls back to the plain path.
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
    """All cells as one UTF-8 string built by SQLite (joined by U+001F, row after row), split
    once by Arrow: Python receives one bytes object instead of one object per cell.

    The row count comes with it: a cell that holds the separator itself adds a cell, so the
    split is trusted only when it gives exactly rows x columns cells."""
    sub = stmt.order_by(None).subquery()  # frames are keyed: SQLite need not sort a million rows
    names = [c.name for c in sub.columns]
    # One printf per row (NULL prints as ""): a chain of ``||`` allocates a string per operator
    # (1M users: 5.2 s -> 3.4 s of SQLite time).
    packed: Any = func.printf(SEPARATOR.join(["%s"] * len(names)), *sub.columns)
    query = select(func.count(), func.group_concat(packed, literal_column("char(31)")))
    try:
        count, blob = _as_bytes(conn, query.select_from(sub))
    except OperationalError:  # over SQLite's string limit (1 GB): the plain path copes
        return None
    width = len(names)
    if not count:
        return _frame(names, [pyarrow.array([], type=pyarrow.large_string())] * width)
    text = pyarrow.LargeStringArray.from_buffers(
        1, pyarrow.array([0, len(blob)], type=pyarrow.int64()).buffers()[1], pyarrow.py_buffer(blob)
    )
    try:
        text.validate(full=True)  # SQLite stores whatever bytes it was given as text
    except pyarrow.ArrowInvalid:
        return None  # not UTF-8: the plain path decodes it as sqlite3 does
    flat = pc.list_flatten(pc.split_pattern(text, SEPARATOR))
    if len(flat) != count * width:
        return None  # a cell holds a separator itself
    columns = [flat.take(pyarrow.array(np.arange(j, count * width, width))) for j in range(width)]
    return _frame(names, columns)


def _as_bytes(conn: Connection, query: Any) -> tuple[int, bytes]:
    """Run a one-row (count, text) query with SQLite handing the text over as bytes: no
    decoding into a Python str only to encode it again for Arrow."""
    raw: Any = conn.connection.dbapi_connection
    previous = raw.text_factory
    raw.text_factory = bytes
    try:
        with _SQLITE_SELECTS:
            count, blob = conn.execute(query).one()
    finally:
        raw.text_factory = previous
    return int(count or 0), blob or b""
