"""The snapshot's big frames of an org, cached in the database as one Arrow blob.

Why: reading a 1M-user org (one select of the users, one of the licenses and numbers, each
turned into Arrow columns) takes seconds, and an administrator validates the same org again
and again between two changes of it. ``orgs.state_version`` grows in the same transaction as
every committed change of an org's state, so ``(org_id, state_version)`` names one state
exactly: a blob stored with the version it was read at is valid for as long as the org's
version is that one, and is never used after (``load_snapshot`` joins the cache row on the
org's current version in the statement that reads the org's settings).

What is cached: ``users`` (with its index), ``licenses`` and ``numbers``, which depend only
on the org's own rows, and the license rows' user positions (``OrgSnapshot.license_holders``:
found once when the frames are read from the tables, they spare the planner a hash lookup of
~3M license emails among ~1M users on every warm job). The small tables (settings, pools,
locations, sites) and the lookups across orgs (free accounts, other orgs' emails: they
change with other orgs and with the file) are always read from the tables.

Layout (``FORMAT``; bump it whenever the frames' columns or their text change meaning): one
Arrow IPC stream of one record batch of one row; each column of each frame is one cell, a
``large_list<large_string>`` holding the whole column, and its field metadata name its frame,
its column and whether it is the frame's index. The holders, when known, are one more cell,
a ``large_list<int32>`` of frame ``license_holders``; a blob without it reads back without
holders (the planner then looks them up). Buffers are Zstandard-compressed (level 1,
see ``_COMPRESSION``).

Writes are best effort: the cache never fails or holds up the job reading the org.
- SQLite: the write asks for the write lock without waiting (busy timeout 0 for that one
  transaction): while another process applies, the write is simply skipped.
- PostgreSQL: ``INSERT ... ON CONFLICT DO UPDATE`` under a short ``lock_timeout`` (another
  session writing the same org's row: skipped) and a ``statement_timeout``.
- Both: the row is written only if the org is still at the version the frames were read at
  (``INSERT ... SELECT ... FROM orgs WHERE state_version = :v``), and it replaces the org's
  previous row, so the table holds at most one row per org. Any error is logged at debug
  level and swallowed; other databases are not written to.
- A blob that cannot be decoded (corrupt, truncated, another layout) is a miss, and the next
  read writes a good one.

Escape hatch: ``CSVIMPORT_SNAPSHOT_CACHE=off`` (or ``0``, ``false``, ``no``) neither reads nor
writes the cache. Deleting rows of ``snapshot_cache`` is always safe (e.g. after editing an
org's tables by hand without bumping its ``state_version``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    Select,
    String,
    and_,
    bindparam,
    literal,
    select,
    text,
    update,
)

from csvimport.store.db import dialect_of, is_sqlite, transaction
from csvimport.store.models import Org, SnapshotCache, utcnow

FORMAT = "snapshot-2"  # 2: the license holders
ENV = "CSVIMPORT_SNAPSHOT_CACHE"
_OFF = ("off", "0", "false", "no")
# Measured on a 1M-user org in SQLite (2 shared cores, medians of 3; encode + write on a miss,
# select + decode on a hit):
#   none  628 MB  miss +3.4 s (encode 0.86, write 2.50)  hit 0.84 s (select 0.81, decode 0.03)
#   lz4   170 MB  miss +1.4 s (encode 0.86, write 0.56)  hit 0.65 s (select 0.20, decode 0.45)
#   zstd   65 MB  miss +1.3 s (encode 1.01, write 0.28)  hit 0.70 s (select 0.08, decode 0.62)
# lz4 and zstd tie on time within the noise of a shared machine; zstd (level 1, Arrow's
# default) stores 2.6 times less, which is also what a PostgreSQL client fetches.
_COMPRESSION: str | None = "zstd"
# SQLite's and PostgreSQL's limit on one value is 1 GB: larger blobs are not written.
_MAX_BYTES = 900_000_000
_PG_LOCK_TIMEOUT = "100ms"
_PG_STATEMENT_TIMEOUT = "10s"
_FRAMES = ("users", "licenses", "numbers")
_HOLDERS = "license_holders"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frames:
    """The cached part of an ``OrgSnapshot`` (see its docstring for the columns).
    ``holders``: its ``license_holders()`` (int32 positions in ``users``), None if unknown."""

    users: pd.DataFrame
    licenses: pd.DataFrame
    numbers: pd.DataFrame
    holders: np.ndarray | None = None


def enabled() -> bool:
    """False when ``$CSVIMPORT_SNAPSHOT_CACHE`` turns the cache off."""
    return os.environ.get(ENV, "").strip().lower() not in _OFF


def with_cached(stmt: Select[Any], fmt: str = FORMAT) -> Select[Any]:
    """``stmt``, a select from ``orgs``, with one more column ``data``: the org's blob when a
    row of ``fmt`` for the org's current ``state_version`` is stored, else NULL. One statement
    reads the version and its blob, so they agree on PostgreSQL's READ COMMITTED too."""
    return stmt.add_columns(SnapshotCache.data).outerjoin(
        SnapshotCache,
        and_(
            SnapshotCache.org_id == Org.id,
            SnapshotCache.state_version == Org.state_version,
            SnapshotCache.format == fmt,
        ),
    )


def read(conn: Connection, org_id: str, state_version: int, fmt: str = FORMAT) -> Frames | None:
    """The frames cached for the org at ``state_version`` in layout ``fmt``, or None."""
    data = conn.execute(
        select(SnapshotCache.data).where(
            SnapshotCache.org_id == org_id,
            SnapshotCache.state_version == state_version,
            SnapshotCache.format == fmt,
        )
    ).scalar()
    return None if data is None or fmt != FORMAT else decode(data)


def write(engine: Engine, org_id: str, state_version: int, frames: Frames) -> None:
    """Store ``frames`` as the org's cache row for ``state_version``, if the org is still at
    that version; best effort (see the module docstring): never raises, never waits for a
    lock."""
    if not enabled() or engine.dialect.name not in ("sqlite", "postgresql"):
        return
    try:
        data = encode(frames)
    except Exception:  # a frame this layout cannot hold: no cache, the job goes on
        log.debug("snapshot cache of %s not encoded", org_id, exc_info=True)
        return
    if data.size > _MAX_BYTES:
        log.debug("snapshot cache of %s not written: %d bytes", org_id, data.size)
        return
    try:
        if is_sqlite(engine):
            _write_sqlite(engine, org_id, state_version, data)
        else:
            _write_postgres(engine, org_id, state_version, data)
    except Exception:  # busy, timed out, disk full, ...: the cache is only an optimisation
        log.debug("snapshot cache of %s not written", org_id, exc_info=True)


def encode(frames: Frames) -> pyarrow.Buffer:
    """The frames as one IPC stream (see the module docstring)."""
    fields: list[pyarrow.Field] = []
    cells: list[pyarrow.Array] = []
    for name in _FRAMES:
        frame: pd.DataFrame = getattr(frames, name)
        columns: list[tuple[str, Any, bool]] = []
        if name == "users":
            columns.append((str(frame.index.name), frame.index, True))
        elif not frame.index.equals(pd.RangeIndex(len(frame))):
            raise ValueError(f"{name}: a default index is expected")
        columns += [(str(c), frame[c], False) for c in frame.columns]
        for column, values, is_index in columns:
            if str(values.dtype) != "str":
                raise ValueError(f"{name}.{column} is {values.dtype}, not str")
            # The Arrow array under the pandas one, without a copy (one chunk in practice).
            array = pyarrow.chunked_array(pyarrow.array(values.array)).combine_chunks()
            array = array.cast(pyarrow.large_string())
            cell = pyarrow.LargeListArray.from_arrays(
                pyarrow.array([0, len(array)], type=pyarrow.int64()), array
            )
            meta = {"frame": name, "column": column, "index": "1" if is_index else "0"}
            fields.append(pyarrow.field(f"{name}.{column}", cell.type, metadata=meta))
            cells.append(cell)
    if frames.holders is not None:
        fields.append(_holders_field())
        cells.append(_holders_cell(frames.holders, len(frames.licenses)))
    schema = pyarrow.schema(fields, metadata={"format": FORMAT})
    batch = pyarrow.RecordBatch.from_arrays(cells, schema=schema)
    options = pyarrow.ipc.IpcWriteOptions(compression=_COMPRESSION)
    if _COMPRESSION is None:
        # Uncompressed, the size is known beforehand: a buffer sized once (growing a
        # BufferOutputStream to 600 MB took seconds).
        mock = pyarrow.MockOutputStream()
        _write_stream(mock, batch, options)
        target = pyarrow.allocate_buffer(mock.size())
        _write_stream(pyarrow.FixedSizeBufferWriter(target), batch, options)
        return target
    sink = pyarrow.BufferOutputStream()
    _write_stream(sink, batch, options)
    return sink.getvalue()


def carry_forward(conn: Connection, org_id: str) -> None:
    """Keep the org's cached frames valid across a change that leaves them as they are.

    Called in the transaction that bumps the org's ``state_version`` by one, before the bump,
    by changes to tables the cache does not hold (an order assigned, a customers job that
    re-pools an org): the row of the current version becomes the row of the next one, so the
    next dry run of a million-user org still reads one blob instead of its tables (~8 s
    more). A row of an older version stays stale."""
    current = select(Org.state_version).where(Org.id == org_id).scalar_subquery()
    conn.execute(
        update(SnapshotCache)
        .where(SnapshotCache.org_id == org_id, SnapshotCache.state_version == current)
        .values(state_version=SnapshotCache.state_version + 1)
    )


def _holders_field() -> pyarrow.Field:
    meta = {"frame": _HOLDERS, "column": "user_at", "index": "0"}
    return pyarrow.field(_HOLDERS, pyarrow.large_list(pyarrow.int32()), metadata=meta)


def _holders_cell(holders: np.ndarray, licenses: int) -> pyarrow.Array:
    """The holders as one ``large_list<int32>`` cell (no copy of the positions)."""
    if holders.dtype != np.int32 or holders.shape != (licenses,):
        raise ValueError("license holders: one int32 per license row is expected")
    values = pyarrow.array(holders, type=pyarrow.int32())
    return pyarrow.LargeListArray.from_arrays(
        pyarrow.array([0, len(values)], type=pyarrow.int64()), values
    )


def _write_stream(sink: Any, batch: pyarrow.RecordBatch, options: Any) -> None:
    with pyarrow.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)


def decode(data: bytes | memoryview | pyarrow.Buffer) -> Frames | None:
    """The frames of a blob written by ``encode``, or None when it is not one (corrupt,
    truncated, another layout): a miss, never a crash."""
    try:
        return _decode(data)
    except Exception:
        log.debug("snapshot cache blob not readable: treated as a miss", exc_info=True)
        return None


def _decode(data: bytes | memoryview | pyarrow.Buffer) -> Frames | None:
    buffer = data if isinstance(data, pyarrow.Buffer) else pyarrow.py_buffer(data)
    with pyarrow.ipc.open_stream(buffer) as reader:
        meta = reader.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            return None
        batch = reader.read_next_batch()
        try:
            reader.read_next_batch()
        except StopIteration:
            pass
        else:
            return None  # one batch was written
    if batch.num_rows != 1:
        return None
    batch.validate()  # buffer sizes against lengths; the offsets are checked below
    parts: dict[str, dict[str, pd.Series]] = {name: {} for name in _FRAMES}
    index: pd.Index | None = None
    holders: np.ndarray | None = None
    for fld, cell in zip(batch.schema, batch.columns, strict=True):
        fmeta = fld.metadata or {}
        frame, column = fmeta[b"frame"].decode(), fmeta[b"column"].decode()
        if frame == _HOLDERS:
            holders = _positions(cell)
            if holders is None:
                return None
            continue
        values = _column(cell)
        if frame not in parts or values is None:
            return None
        series = pd.Series(values, dtype="str")
        if fmeta[b"index"] == b"1":
            index = pd.Index(series, name=column)
        else:
            parts[frame][column] = series
    if index is None or not parts["users"]:
        return None
    users = pd.DataFrame(parts["users"])  # a default index first: no alignment on the emails
    users.index = index
    licenses = pd.DataFrame(parts["licenses"])
    if holders is not None and not positions_fit(holders, len(users), len(licenses)):
        return None
    return Frames(users, licenses, pd.DataFrame(parts["numbers"]), holders)


def positions_fit(positions: np.ndarray, users: int, licenses: int) -> bool:
    """Whether ``positions`` can be license holders: one int32 per license row, each a
    position among ``users`` rows or -1. A cheap check (~3 ms at 3M license rows): it keeps
    damaged bytes from indexing out of bounds; it cannot tell a wrong user."""
    if positions.dtype != np.int32 or positions.shape != (licenses,):
        return False
    return not licenses or -1 <= int(positions.min()) <= int(positions.max()) < users


def _positions(cell: Any) -> np.ndarray | None:
    """The int32 positions held by a one-row list cell (read-only, no copy), or None if the
    cell is not what ``encode`` writes (whether they fit the frames is checked after)."""
    values = _listed(cell)
    if values is None or values.type != pyarrow.int32():
        return None
    return np.asarray(values.to_numpy(zero_copy_only=True))


def _listed(cell: Any) -> pyarrow.Array | None:
    """The values of a one-row list cell as ``encode`` writes it (no null anywhere, one list
    that starts at the first value and ends within them), or None."""
    if not isinstance(cell, pyarrow.LargeListArray) or cell.null_count:
        return None
    ends = cell.offsets.to_numpy()
    values = cell.values
    if values.null_count or len(ends) != 2 or ends[0] != 0 or not 0 <= ends[1] <= len(values):
        return None
    return values.slice(0, int(ends[1]))


def _column(cell: Any) -> pyarrow.Array | None:
    """The text column held by a one-row list cell, or None if its offsets or nulls are not
    what ``encode`` writes. Checking the offsets (monotonic, within the data) keeps damaged
    bytes that still parse from reading out of bounds; it costs ~30 ms at 1M users where
    Arrow's full validation (UTF-8 of every cell too) costs ~300 ms."""
    values = _listed(cell)
    if not isinstance(values, pyarrow.LargeStringArray):
        return None
    _, offsets_buf, data_buf = values.buffers()
    if offsets_buf is None:
        return None
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data_size = 0 if data_buf is None else data_buf.size
    if len(offsets) != len(values) + 1 or (
        len(offsets) and (offsets[0] < 0 or offsets[-1] > data_size)
    ):
        return None
    if len(offsets) > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        return None
    return values


def _upsert(dialect: Any, org_id: str, state_version: int) -> Any:
    """Insert or replace the org's row, only while the org is at ``state_version``."""
    source = select(
        literal(org_id, String()),
        literal(state_version, Integer()),
        literal(FORMAT, String()),
        literal(utcnow(), DateTime(timezone=True)),
        bindparam("data", type_=LargeBinary()),
    ).where(Org.id == org_id, Org.state_version == state_version)
    table = SnapshotCache.__table__
    names = ["org_id", "state_version", "format", "created_at", "data"]
    stmt = dialect.insert(table).from_select(names, source)
    return stmt.on_conflict_do_update(
        index_elements=["org_id"],
        set_={n: stmt.excluded[n] for n in names[1:]},
        where=table.c.state_version <= stmt.excluded.state_version,
    )


def _write_sqlite(engine: Engine, org_id: str, state_version: int, data: pyarrow.Buffer) -> None:
    """Take the write lock without waiting: while another process writes (an apply may hold
    the lock for minutes), skip the cache rather than wait out the busy timeout."""
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            with conn.execution_options(sqlite_immediate=True).begin():
                conn.execute(
                    _upsert(dialect_of(conn), org_id, state_version), {"data": memoryview(data)}
                )
        finally:
            try:
                raw.execute(f"PRAGMA busy_timeout = {int(previous)}")
            except Exception:
                conn.invalidate()  # never hand a connection that does not wait back to the pool
                raise


def _write_postgres(engine: Engine, org_id: str, state_version: int, data: pyarrow.Buffer) -> None:
    with transaction(engine) as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{_PG_LOCK_TIMEOUT}'"))
        conn.execute(text(f"SET LOCAL statement_timeout = '{_PG_STATEMENT_TIMEOUT}'"))
        conn.execute(_upsert(dialect_of(conn), org_id, state_version), {"data": memoryview(data)})
