"""What a cold read of an org gives back before the job's memory peak."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from csvimport.store.db import connect, transaction
from csvimport.store.models import SnapshotCache
from csvimport.store.orgfile import load_org_file
from csvimport.store.snapshot import load_snapshot


def test_a_cold_read_closes_the_file_databases_idle_connections(
    tmp_path: Path, org_file: Path
) -> None:
    """SQLite keeps a big select's pages and sorter memory in the connection, and a copy of
    the cache blob it bound in the statement that wrote it: after a read from the tables and
    the cache write, the pool holds no idle connection, and the next read works as before."""
    engine = connect(f"sqlite:///{tmp_path / 'cold.db'}")
    load_org_file(engine, org_file)
    with transaction(engine) as conn:
        conn.execute(delete(SnapshotCache))
    cold = load_snapshot(engine, "acme")
    assert engine.pool.checkedin() == 0
    warm = load_snapshot(engine, "acme")
    assert list(warm.users.index) == list(cold.users.index)
