"""Engines, transactions and the schema version.

Decisions:
- One URL picks the database: the argument, else ``CSVIMPORT_DB``, else an embedded SQLite file
  ``csvimport.db`` in the working directory (SPEC 8). PostgreSQL is for shared use.
- SQLite runs in WAL mode (readers never block the writer), with foreign keys on and a busy
  timeout so that concurrent workers wait instead of failing. We take over pysqlite's
  transaction handling (its implicit BEGIN comes too late) so that a writing transaction starts
  with ``BEGIN IMMEDIATE``: a read-check-write such as "is the plan still current?" then cannot be
  overtaken by another writer between its read and its write.
- The schema is created on first use and its version is recorded in ``meta``; a database made by
  a newer csvimport is refused with a clear message instead of being misread, and one made by
  an older csvimport is migrated in place (``migrate``), in the same transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from csvimport.store.migrate import migrate
from csvimport.store.models import Base, Meta

SCHEMA_VERSION = 2  # 2: users, user_licenses, numbers WITHOUT ROWID on SQLite
DEFAULT_URL = "sqlite:///csvimport.db"
_BUSY_TIMEOUT_MS = 30_000
# An arbitrary constant key: the PostgreSQL advisory lock that serialises schema creation.
_SCHEMA_LOCK_KEY = 7_271_834_001


class SchemaVersionError(RuntimeError):
    """The database was written by a newer csvimport than this one."""


# ``Connection.info`` key set once a plan's audit is written, before its transaction commits:
# batch's test hook CSVIMPORT_TEST_PAUSE_BEFORE_COMMIT pauses there (no statement shows it on
# PostgreSQL, whose audit goes by COPY).
APPLYING = "csvimport_applying"


def database_url(url: str | None = None) -> str:
    """The URL in effect: ``url``, else ``$CSVIMPORT_DB``, else the SQLite default."""
    return url or os.environ.get("CSVIMPORT_DB") or DEFAULT_URL


def connect(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine for ``url`` (see ``database_url``), with the schema created and checked."""
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if create:
        ensure_schema(engine)
    return engine


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def dialect_of(bind: Engine | Connection) -> Any:
    """The SQLAlchemy dialect package of ``bind`` (SQLite or PostgreSQL), for its
    ``insert ... ON CONFLICT``. Imported on first use: a SQLite job never imports
    PostgreSQL's, which brings the modules of all its drivers (~40 ms of start-up)."""
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


def insert_ignore(bind: Engine | Connection, table: Any, key: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` into ``table``: the row count tells
    whether the row went in (a claim or a lock taken, or already held)."""
    return dialect_of(bind).insert(table).on_conflict_do_nothing(index_elements=[key])


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, see below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One Core transaction: committed on success, rolled back on any exception.

    ``write=True`` takes SQLite's write lock at the start (``BEGIN IMMEDIATE``); PostgreSQL
    callers lock the rows they check with ``SELECT ... FOR UPDATE``.
    """
    bind = engine.execution_options(sqlite_immediate=write) if is_sqlite(engine) else engine
    with bind.begin() as conn:
        yield conn


@contextmanager
def session(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """One ORM session in one transaction: committed on success, rolled back on error."""
    bind = engine.execution_options(sqlite_immediate=write) if is_sqlite(engine) else engine
    with Session(bind, expire_on_commit=False) as sess, sess.begin():
        yield sess


def ensure_schema(engine: Engine) -> int:
    """Create the tables if missing, record or check the schema version; return it."""
    try:
        return _ensure_schema_once(engine)
    except DBAPIError:
        # Two processes creating the same SQLite schema at once: the loser retries and
        # then finds the tables there.
        return _ensure_schema_once(engine)


def _ensure_schema_once(engine: Engine) -> int:
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        Base.metadata.create_all(conn, checkfirst=True)
        found = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
        if found is None:
            conn.execute(insert(Meta), {"key": "schema_version", "value": str(SCHEMA_VERSION)})
            return SCHEMA_VERSION
        version = int(found)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the database {engine.url.render_as_string(hide_password=True)} has schema "
                f"version {version}, but this csvimport knows only up to {SCHEMA_VERSION}: "
                "upgrade csvimport"
            )
        if version < SCHEMA_VERSION:
            migrate(conn, version)
            conn.execute(
                update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION))
            )
        return SCHEMA_VERSION
