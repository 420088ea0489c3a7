"""``store.bulk.executemany`` stores what ``Connection.execute`` stores, on both backends:
JSON (objects, null, None), booleans, integers, text, values fixed in the statement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    insert,
    select,
    update,
)

from csvimport.store.bulk import among, executemany, insert_rows

META = MetaData()
TABLES = [
    Table(
        name,
        META,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org", String(20)),
        Column("name", String(50)),
        Column("flag", Boolean),
        Column("doc", JSON),
        Column("doc_or_null", JSON(none_as_null=True)),
    )
    for name in ("bulk_a", "bulk_b")
]

SHARED = {"license": "x", "n": [1, 2]}  # one object in two rows: serialized once, stored twice
ROWS: list[dict[str, Any]] = [
    {"name": "Zoë", "flag": True, "doc": SHARED, "doc_or_null": None},
    {"name": "", "flag": False, "doc": None, "doc_or_null": {"a": "ø"}},
    {"name": None, "flag": None, "doc": {"nested": {"to": None}}, "doc_or_null": {}},
    {"name": "Ola", "flag": True, "doc": SHARED, "doc_or_null": SHARED},
]


@pytest.fixture
def bound(db_url: str) -> Any:
    engine: Engine = create_engine(db_url)
    META.create_all(engine)
    yield engine
    META.drop_all(engine)
    engine.dispose()


def _contents(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r)[1:] for r in conn.execute(select(table).order_by(table.c.id))]


def test_the_same_rows_either_way(bound: Engine) -> None:
    plain, fast = TABLES
    with bound.begin() as conn:
        conn.execute(insert(plain).values(org="acme"), ROWS)
        executemany(conn, insert(fast).values(org="acme"), ROWS)
    assert _contents(bound, fast) == _contents(bound, plain)
    assert len(_contents(bound, fast)) == 4

    renames = [{"k_name": "Zoë", "v_doc": {"renamed": True}}, {"k_name": "", "v_doc": None}]
    for table in TABLES:
        stmt = (
            update(table)
            .where(table.c.org == "acme", table.c.name == bindparam("k_name"))
            .values(doc=bindparam("v_doc"))
        )
        with bound.begin() as conn:
            if table is plain:
                conn.execute(stmt, renames)
            else:
                executemany(conn, stmt, renames)
    after = _contents(bound, fast)
    assert after == _contents(bound, plain)
    assert after[0][3] == {"renamed": True}  # the update did change the rows

    for table in TABLES:
        gone = delete(table).where(table.c.org == "acme", table.c.flag == bindparam("k_flag"))
        with bound.begin() as conn:
            executemany(conn, gone, [{"k_flag": True}])
    assert _contents(bound, fast) == _contents(bound, plain)
    assert len(_contents(bound, fast)) == 2


def test_a_parameter_the_rows_lack_is_an_error() -> None:
    engine = create_engine("sqlite://")
    META.create_all(engine)
    table = TABLES[0]
    stmt = update(table).where(table.c.name == bindparam("k_name")).values(flag=True)
    with engine.begin() as conn, pytest.raises(ValueError, match="k_name"):
        executemany(conn, stmt, [{"other": 1}])


def test_more_rows_than_one_statement_takes(bound: Engine) -> None:
    """An insert goes to SQLite as statements of many rows each, never more than 999
    parameters: 1,000 rows of 5 parameters take several statements, all rows arrive."""
    plain, fast = TABLES
    rows = [
        {"name": f"n{i}", "flag": i % 2 == 0, "doc": {"i": i}, "doc_or_null": None}
        for i in range(1000)
    ]
    with bound.begin() as conn:
        conn.execute(insert(plain).values(org="many"), rows)
        executemany(conn, insert(fast).values(org="many"), rows)
    stored = _contents(bound, fast)
    assert stored == _contents(bound, plain)
    assert [r[1] for r in stored] == [f"n{i}" for i in range(1000)]


def test_among_selects_what_in_selects(bound: Engine) -> None:
    plain = TABLES[0]
    with bound.begin() as conn:
        conn.execute(insert(plain).values(org="in"), ROWS)
    for wanted in (["Zoë", "Ola", "nobody"], [], ['it\'s "quoted"', "Ola"]):
        with bound.connect() as conn:
            by_in = conn.execute(select(plain.c.name).where(plain.c.name.in_(wanted))).all()
            by_among = conn.execute(
                select(plain.c.name).where(among(plain.c.name, wanted, conn.dialect))
            ).all()
        assert sorted(by_among) == sorted(by_in)
    assert len(by_in) == 1  # the last list finds "Ola" only


def test_insert_rows_stores_what_an_insert_stores(bound: Engine) -> None:
    """``insert_rows`` (COPY on PostgreSQL) against ``Connection.execute`` of an insert, with
    a value fixed for every row: JSON objects, JSON null and SQL NULL, shared objects,
    booleans, text with tabs, backslashes and newlines (COPY's own escapes), 1,000 rows."""
    plain, fast = TABLES
    rows = [*ROWS, {"name": "tab\tback\\slash\nline", "flag": None, "doc": [], "doc_or_null": None}]
    rows += [
        {"name": f"n{i}", "flag": i % 2 == 0, "doc": {"i": i}, "doc_or_null": None}
        for i in range(1000)
    ]
    with bound.begin() as conn:
        conn.execute(insert(plain).values(org="copy"), rows)
        insert_rows(conn, fast, rows, org="copy")
    stored = _contents(bound, fast)
    assert stored == _contents(bound, plain)
    assert len(stored) == 1005 and stored[4][1] == "tab\tback\\slash\nline"


def test_a_column_default_left_out_is_an_error(db_url: str) -> None:
    """Both bulk paths bypass SQLAlchemy's Python-side column defaults: an insert that leaves
    such a column out is refused rather than stored with NULL in it."""
    meta = MetaData()
    table = Table("bulk_d", meta, Column("a", String(5)), Column("b", String(5), default="x"))
    engine = create_engine(db_url)
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            with pytest.raises(ValueError, match="no value for b"):
                insert_rows(conn, table, [{"a": "1"}])
            with pytest.raises(ValueError, match="no value for b"):
                executemany(conn, insert(table), [{"a": "1"}])
            insert_rows(conn, table, [{"a": "2", "b": "y"}])
            assert conn.execute(select(table.c.a, table.c.b)).all() == [("2", "y")]
    finally:
        meta.drop_all(engine)
        engine.dispose()
