"""Upgrades of a database written by an older csvimport, one schema version at a time.

Why hand-written steps rather than Alembic: there is one step so far, it is SQLite-only
(a storage layout, not a change of columns), and it must run inside ``ensure_schema``'s
transaction on whatever database an administrator points us at. Each step is idempotent
against a half-finished earlier attempt because the whole upgrade commits or rolls back as one.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from csvimport.store.models import CLUSTERED_TABLES, Base


def migrate(conn: Connection, version: int) -> None:
    """Bring a database of schema ``version`` up to the current one."""
    if version < 2 and conn.dialect.name == "sqlite":
        _cluster_sqlite_tables(conn)


def _cluster_sqlite_tables(conn: Connection) -> None:
    """1 -> 2: rebuild the users, user_licenses and numbers tables as ``WITHOUT ROWID``.

    SQLite cannot alter a table's storage, so each table is copied into a new one, the old one
    dropped and the new one renamed (SQLite's "generalized ALTER TABLE" procedure), all in
    ``ensure_schema``'s transaction. Foreign keys stay on, so the order matters: dropping the
    old ``users`` runs its ``ON DELETE CASCADE``, hence the new ``user_licenses`` points at the
    new ``users`` table from the start and the old ``user_licenses`` is dropped first. The
    rename then rewrites that reference to ``users``.
    """
    new = {name: f"{name}_v2" for name in CLUSTERED_TABLES}
    for name in CLUSTERED_TABLES:
        table = Base.metadata.tables[name]
        ddl = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
        ddl = ddl.replace(f"CREATE TABLE {name} ", f"CREATE TABLE {new[name]} ", 1)
        ddl = ddl.replace("REFERENCES users (", f"REFERENCES {new['users']} (")
        conn.exec_driver_sql(ddl)
        cols = ", ".join(c.name for c in table.columns)
        conn.exec_driver_sql(f"INSERT INTO {new[name]} ({cols}) SELECT {cols} FROM {name}")
    for name in reversed(CLUSTERED_TABLES):  # children before their parent
        conn.exec_driver_sql(f"DROP TABLE {name}")
    for name in CLUSTERED_TABLES:
        conn.exec_driver_sql(f"ALTER TABLE {new[name]} RENAME TO {name}")
        for index in Base.metadata.tables[name].indexes:
            conn.execute(CreateIndex(index))
