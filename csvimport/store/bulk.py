"""``executemany`` without SQLAlchemy's per-row parameter work, for drivers that take rows as
tuples.

Why: applying 100k operations into SQLite spent ~3.5 s in SQLAlchemy building and
type-processing every row's parameters (``construct_params``, then the JSON type's serializer
row by row), more than SQLite itself took to write them (~2.3 s). Here the statement is
compiled once, each parameter's bind processor is looked up once and run over its column, and
the rows go to the driver as tuples through ``exec_driver_sql`` (an insert as statements of
many rows each, anything else by ``executemany``): the same connection, transaction and type
processing, so what is stored is what ``Connection.execute`` stores (``test_bulk``). ``among``
does the same for long ``IN`` lists.

Only dialects with a positional paramstyle (SQLite's ``qmark``) take this path. PostgreSQL
(``psycopg``, named parameters) keeps ``Connection.execute`` for its updates and deletes;
its inserts go by ``COPY`` (``insert_rows``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase


def executemany(conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """``conn.execute(stmt, rows)`` of an insert, update or delete: every row has the same
    keys, those of the statement's parameters that are not fixed in it."""
    if not rows:
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    assert isinstance(compiled, SQLCompiler)
    _no_default_needed(compiled)  # on either path, so that both backends refuse the same
    names = compiled.positiontup
    if names is None:  # a named paramstyle: SQLAlchemy's own executemany
        conn.execute(stmt, rows)
        return
    columns = [_column(compiled.binds[name], name, rows, conn) for name in names]
    tuples = list(zip(*columns, strict=True))
    values = _VALUES.fullmatch(compiled.string) if isinstance(stmt, Insert) else None
    if values is None:
        conn.exec_driver_sql(compiled.string, tuples)
    else:
        _insert_batched(conn, values["head"], values["row"], tuples)


# An insert's SQL ending in one row of positional parameters: ``... VALUES (?, ?, ?)``.
_VALUES = re.compile(r"(?P<head>.* VALUES )(?P<row>\(\?(?:, \?)*\))", re.DOTALL)
# Parameters in one statement: SQLite's limit before 3.32 (32,766 since).
_MAX_PARAMETERS = 999


def _insert_batched(conn: Connection, head: str, row: str, tuples: list[tuple[Any, ...]]) -> None:
    """The rows inserted by statements of many rows each (``VALUES (?, ?), (?, ?), ...``):
    SQLite runs one statement per row of an ``executemany``, and a statement per hundred
    rows wrote 100k audit rows ~30 % faster (1.0 -> 0.7 s)."""
    per = max(1, _MAX_PARAMETERS // len(tuples[0]))
    for start in range(0, len(tuples), per):
        batch = tuples[start : start + per]
        sql = head + ", ".join([row] * len(batch))
        conn.exec_driver_sql(sql, tuple(value for one in batch for value in one))


def _column(
    bind: BindParameter[Any], name: str, rows: Sequence[Mapping[str, Any]], conn: Connection
) -> list[Any]:
    """One parameter's values over the rows, as the driver takes them: from each row, or the
    value fixed in the statement (``org_id == 'acme'``), through the type's bind processor."""
    process = _processor(bind, conn)
    if name in rows[0]:
        values = [row[name] for row in rows]
        return values if process is None else _processed(values, process)
    if bind.callable is not None or bind.required:
        raise ValueError(f"no value for the parameter {name!r} in the rows")
    value = bind.effective_value if process is None else process(bind.effective_value)
    return [value] * len(rows)


def _processed(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """``process`` of each value, once per distinct object: rows that share one object (None,
    the audit's one ``{"license": ...}`` per license) share its result, so a JSON column of
    100k rows is not serialized 100k times when it holds a few distinct documents."""
    done: dict[int, Any] = {}
    out = []
    for value in values:
        key = id(value)  # the values are alive (``values`` holds them): ids are not reused
        if key not in done:
            done[key] = process(value)
        out.append(done[key])
    return out


def _processor(bind: BindParameter[Any], conn: Connection) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = bind.type.dialect_impl(conn.dialect).bind_processor(
        conn.dialect
    )
    return processor


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], **fixed: Any
) -> None:
    """Insert ``rows`` (every one with the same keys) into ``table``, with the ``fixed``
    values in every row: on PostgreSQL by ``COPY``, elsewhere by ``executemany``.

    Why ``COPY``: SQLAlchemy's executemany on PostgreSQL builds and type-processes every
    row's parameters in Python and sends them as multi-row inserts; the apply's 224k audit
    rows took 4.4 s that way. ``COPY ... FROM STDIN`` streams the rows in the same
    transaction; each value goes through its column type's bind processor first, as
    ``Connection.execute`` would (``test_bulk``)."""
    if not rows:
        return
    stmt = insert(table).values(**fixed)
    if conn.dialect.name != "postgresql":
        executemany(conn, stmt, rows)
        return
    names = [*fixed, *rows[0]]
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    assert isinstance(compiled, SQLCompiler)
    _no_default_needed(compiled)
    # The insert's own parameters: a fixed value or a row's, through the column's processor.
    columns = [_column(compiled.binds[n], n, rows, conn) for n in names]
    prep = conn.dialect.identifier_preparer
    target = ", ".join(prep.format_column(table.c[n]) for n in names)
    raw: Any = conn.connection.dbapi_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {prep.format_table(table)} ({target}) FROM STDIN") as copy,
    ):
        for values in zip(*columns, strict=True):
            copy.write_row(values)


def _no_default_needed(compiled: SQLCompiler) -> None:
    """Refuse an insert that leaves out a column with a Python-side default: SQLAlchemy fills
    those per execution, which both bulk paths bypass (the column would be NULL)."""
    if compiled.insert_prefetch:
        names = ", ".join(c.name for c in compiled.insert_prefetch)
        raise ValueError(f"no value for {names}: a bulk insert fills no column default")


def among(column: ColumnElement[Any], values: list[str], dialect: Dialect) -> ColumnElement[bool]:
    """``column IN values`` for a few thousand texts. On SQLite the values are one bound JSON
    array read by ``json_each``: SQLAlchemy renders and processes a bound parameter per value
    of an ``IN`` list (~0.4 s of a 100k-operation apply). Elsewhere an ordinary ``IN``."""
    if dialect.name != "sqlite":
        return column.in_(values)
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(values), type_=Text))
    )
    return column.in_(listed.scalar_subquery())
