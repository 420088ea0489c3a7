"""The snapshot cache: a hit gives exactly what the tables give, a stale or damaged row is
never used, and writing it never fails or holds up the read (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pytest
from sqlalchemy import Engine, create_engine, delete, func, insert, select, text, update

from csvimport.apply import apply_plan
from csvimport.model import PLAN_COLUMNS, Plan
from csvimport.planfile import apply_reviewed
from csvimport.planwrite import write_plan
from csvimport.store import snapcache
from csvimport.store import snapshot as snapshot_mod
from csvimport.store.db import transaction
from csvimport.store.models import Org, SnapshotCache, User, UserLicense
from csvimport.store.orders import assign_order, load_orders
from csvimport.store.orgfile import load_org_file
from csvimport.store.snapshot import OrgSnapshot, holder_positions, load_snapshot


@pytest.fixture(autouse=True)
def cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with the cache on, whatever the environment says."""
    monkeypatch.delenv(snapcache.ENV, raising=False)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The orgs whose users were selected from the tables (a miss each)."""
    seen: list[str] = []
    real = snapshot_mod._users

    def counting(conn: Any, org_id: str) -> pd.DataFrame:
        seen.append(org_id)
        return real(conn, org_id)

    monkeypatch.setattr(snapshot_mod, "_users", counting)
    return seen


def fresh(
    engine: Engine, org: str, monkeypatch: pytest.MonkeyPatch, emails: list[str] | None = None
) -> OrgSnapshot:
    """The org read from its tables, the cache off."""
    with monkeypatch.context() as m:
        m.setenv(snapcache.ENV, "off")
        return load_snapshot(engine, org, emails)


def assert_same(got: OrgSnapshot, want: OrgSnapshot) -> None:
    assert got.settings == want.settings
    pd.testing.assert_frame_equal(got.users, want.users)
    pd.testing.assert_frame_equal(got.licenses, want.licenses)
    pd.testing.assert_frame_equal(got.numbers, want.numbers)
    pd.testing.assert_frame_equal(got.pools, want.pools)
    assert (got.locations, got.sites) == (want.locations, want.sites)
    assert (got.free_accounts, got.other_org_emails) == (want.free_accounts, want.other_org_emails)
    held, wanted = got.license_holders(), want.license_holders()
    assert held is not None and wanted is not None and np.array_equal(held, wanted)


def rows(engine: Engine) -> dict[str, tuple[int, str]]:
    """org -> (state_version, format) of every cache row."""
    with transaction(engine, write=False) as conn:
        found = conn.execute(
            select(SnapshotCache.org_id, SnapshotCache.state_version, SnapshotCache.format)
        )
        return {r[0]: (r[1], r[2]) for r in found}


def blob(engine: Engine, org: str) -> bytes:
    with transaction(engine, write=False) as conn:
        data = conn.execute(select(SnapshotCache.data).where(SnapshotCache.org_id == org))
        return bytes(data.scalar_one())


def set_blob(engine: Engine, org: str, data: bytes) -> None:
    with transaction(engine) as conn:
        conn.execute(update(SnapshotCache).where(SnapshotCache.org_id == org).values(data=data))


def version(engine: Engine, org: str) -> int:
    with transaction(engine, write=False) as conn:
        return int(conn.execute(select(Org.state_version).where(Org.id == org)).scalar_one())


def poisoned(snap: OrgSnapshot, title: str) -> snapcache.Frames:
    """The snapshot's frames with every user's title replaced: a cache row that can only
    come back from the cache."""
    users = snap.users.copy()
    users["title"] = pd.Series([title] * len(users), index=users.index, dtype="str")
    return snapcache.Frames(users, snap.licenses, snap.numbers)


def test_hit_gives_what_the_tables_give_without_reading_them(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    with transaction(engine) as conn:  # an extra field: one more column, from JSON
        conn.execute(
            update(User)
            .where(User.org_id == acme, User.email == "bob@acme.example")
            .values(extra={"cost_center": "4711"})
        )
    want = fresh(engine, acme, monkeypatch)
    assert "cost_center" in want.users.columns and rows(engine) == {}
    first = load_snapshot(engine, acme)  # miss: read, then stored
    assert reads == [acme, acme]
    assert rows(engine) == {acme: (want.state_version, snapcache.FORMAT)}
    again = load_snapshot(engine, acme, emails=["carl@acme.example"])
    assert reads == [acme, acme]  # the users were not selected again
    assert_same(first, want)
    assert again.free_accounts == {"carl@acme.example"}
    assert_same(again, fresh(engine, acme, monkeypatch, ["carl@acme.example"]))


def test_a_stored_row_is_what_a_hit_returns(engine: Engine, acme: str) -> None:
    """Proof that a hit really comes from the blob: a row written with other titles for the
    org's current version is what the next read returns."""
    snap = load_snapshot(engine, acme)
    snapcache.write(engine, acme, snap.state_version, poisoned(snap, "From the cache"))
    assert set(load_snapshot(engine, acme).users["title"]) == {"From the cache"}
    with transaction(engine, write=False) as conn:
        cached = snapcache.read(conn, acme, snap.state_version)
        assert cached is not None and set(cached.users["title"]) == {"From the cache"}
        assert snapcache.read(conn, acme, snap.state_version + 1) is None
        assert snapcache.read(conn, acme, snap.state_version, "snapshot-0") is None


def _plan(version: int) -> Plan:
    ops = [
        {
            "op": "modify_user",
            "row": 2,
            "email": "anna@acme.example",
            "license": None,
            "data": {"changes": {"title": {"from": "", "to": "CEO"}}},
        },
        {"op": "delete_user", "row": 3, "email": "bob@acme.example", "license": None, "data": {}},
        {
            "op": "claim_user",
            "row": 4,
            "email": "carl@acme.example",
            "license": None,
            "data": {"attributes": {"first_name": "Carl", "last_name": "Claimed"}},
        },
        {
            "op": "assign_license",
            "row": 4,
            "email": "carl@acme.example",
            "license": "webex_meetings",
            "data": {},
        },
    ]
    frame = pd.DataFrame(ops, columns=PLAN_COLUMNS)
    return Plan(org="acme", mode="add-remove", state_version=version, sha256=None, operations=frame)


def test_after_an_apply_the_stale_rows_are_never_used(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply changes acme and claims a user of the consumer org ``free``: both cached
    rows go stale, and both reads give the new state."""
    old_acme, old_free = load_snapshot(engine, acme), load_snapshot(engine, "free")
    assert rows(engine) == {
        acme: (old_acme.state_version, snapcache.FORMAT),
        "free": (old_free.state_version, snapcache.FORMAT),
    }
    apply_plan(engine, _plan(old_acme.state_version), "job-1")
    assert version(engine, acme) == old_acme.state_version + 1
    assert version(engine, "free") == old_free.state_version + 1
    assert rows(engine)[acme][0] == old_acme.state_version  # still there, stale
    new_acme, new_free = load_snapshot(engine, acme), load_snapshot(engine, "free")
    assert_same(new_acme, fresh(engine, acme, monkeypatch))
    assert_same(new_free, fresh(engine, "free", monkeypatch))
    assert sorted(new_acme.users.index) == ["anna@acme.example", "carl@acme.example"]
    assert new_acme.users.loc["anna@acme.example", "title"] == "CEO"
    assert "carl@acme.example" not in new_free.users.index
    assert rows(engine) == {  # replaced, one row per org
        acme: (old_acme.state_version + 1, snapcache.FORMAT),
        "free": (old_free.state_version + 1, snapcache.FORMAT),
    }
    assert_same(load_snapshot(engine, acme), new_acme)  # and now a hit


def test_a_reviewed_plan_applied_leaves_the_cache_at_the_new_state(
    engine: Engine, acme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    """``apply --plan``, like an apply of a file, reads the changed org once more: the next
    dry run is a hit on the new state, not a read of the tables."""
    old = load_snapshot(engine, acme)
    path = tmp_path / "plan.jsonl"
    write_plan(path, _plan(old.state_version))
    result = apply_reviewed(engine, path, None)
    assert result.state_version == old.state_version + 1
    assert rows(engine)[acme] == (old.state_version + 1, snapcache.FORMAT)
    reads.clear()
    new = load_snapshot(engine, acme)
    assert reads == []  # a hit
    assert_same(new, fresh(engine, acme, monkeypatch))
    assert new.users.loc["anna@acme.example", "title"] == "CEO"


def test_an_order_assigned_keeps_the_cached_frames_valid(
    engine: Engine, acme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    """An order changes a pool, which is never cached: the row moves to the org's new version
    in the same transaction, and the pools still come fresh from their table."""
    old = load_snapshot(engine, acme)
    orders = tmp_path / "orders.yaml"
    orders.write_text("orders: [{id: ORD-7, license: miteam_meetings, quantity: 50}]\n")
    load_orders(engine, orders)
    assign_order(engine, "ORD-7", acme)
    assert rows(engine)[acme] == (old.state_version + 1, snapcache.FORMAT)
    reads.clear()
    new = load_snapshot(engine, acme)
    assert reads == []  # a hit
    assert new.state_version == old.state_version + 1
    assert_same(new, fresh(engine, acme, monkeypatch))
    assert new.pools.set_index("license").loc["miteam_meetings", "quantity"] == 55


def test_an_order_assigned_does_not_revive_a_stale_row(
    engine: Engine, acme: str, tmp_path: Path
) -> None:
    """Only the row of the version the order moves the org from is carried: a row already
    stale stays stale."""
    old = load_snapshot(engine, acme)
    with transaction(engine) as conn:  # a change the cache row did not see
        conn.execute(update(Org).where(Org.id == acme).values(state_version=Org.state_version + 1))
    orders = tmp_path / "orders.yaml"
    orders.write_text("orders: [{id: ORD-7, license: miteam_meetings, quantity: 50}]\n")
    load_orders(engine, orders)
    assign_order(engine, "ORD-7", acme)
    assert version(engine, acme) == old.state_version + 2
    assert rows(engine)[acme] == (old.state_version, snapcache.FORMAT)


def test_after_an_org_reload_the_stale_row_is_never_used(
    engine: Engine, acme: str, org_file: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    old = load_snapshot(engine, acme)
    org_file.write_text(
        org_file.read_text(encoding="utf-8")
        .replace("first_name: Bob", "first_name: Robert")
        .replace('  - {number: "+4930123458", location: HQ}\n', ""),
        encoding="utf-8",
    )
    load_org_file(engine, org_file)
    reads.clear()
    new = load_snapshot(engine, acme)
    assert reads == [acme]  # a miss
    assert_same(new, fresh(engine, acme, monkeypatch))
    assert new.users.loc["bob@acme.example", "first_name"] == "Robert"
    assert len(new.numbers) == len(old.numbers) - 1
    assert rows(engine)[acme][0] == old.state_version + 1


def test_a_write_for_a_version_the_org_left_is_not_stored(engine: Engine, acme: str) -> None:
    snap = load_snapshot(engine, acme)
    with transaction(engine) as conn:
        conn.execute(delete(SnapshotCache))
    frames = poisoned(snap, "Old")
    snapcache.write(engine, acme, snap.state_version - 1, frames)  # the org is past it
    snapcache.write(engine, acme, snap.state_version + 1, frames)  # not there yet
    assert rows(engine) == {}
    snapcache.write(engine, acme, snap.state_version, frames)
    assert rows(engine) == {acme: (snap.state_version, snapcache.FORMAT)}


@pytest.mark.parametrize("word", ["off", "OFF", "0", "false"])
def test_env_var_turns_reading_and_writing_off(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    monkeypatch.setenv(snapcache.ENV, word)
    snap = load_snapshot(engine, acme)
    assert rows(engine) == {}  # nothing written
    snapcache.write(engine, acme, snap.state_version, poisoned(snap, "Cached"))
    assert rows(engine) == {}
    monkeypatch.delenv(snapcache.ENV)
    snapcache.write(engine, acme, snap.state_version, poisoned(snap, "Cached"))
    assert set(load_snapshot(engine, acme).users["title"]) == {"Cached"}  # on: the row is used
    monkeypatch.setenv(snapcache.ENV, word)
    assert_same(load_snapshot(engine, acme), snap)  # off: it is not


@pytest.fixture
def write_lock_held(engine: Engine, acme: str) -> Iterator[None]:
    """Another connection holds what a cache write of ``acme`` needs, until the test ends:
    SQLite's write lock, or on PostgreSQL the org's cache row (inserted, not committed)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        assert path
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    blocker = create_engine(engine.url)
    conn = blocker.connect()
    trans = conn.begin()
    conn.execute(
        text(
            "INSERT INTO snapshot_cache (org_id, state_version, format, created_at, data) "
            "VALUES (:o, 0, 'held', now(), '\\x00')"
        ),
        {"o": acme},
    )
    try:
        yield
    finally:
        trans.rollback()
        conn.close()
        blocker.dispose()


def test_a_write_that_would_wait_for_a_lock_is_skipped_at_once(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, write_lock_held: None
) -> None:
    start = time.monotonic()
    snap = load_snapshot(engine, acme)  # a miss: reads, then tries to store the blob
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"the cache write waited {elapsed:.1f}s for the lock"
    assert_same(snap, fresh(engine, acme, monkeypatch))


def test_a_skipped_write_leaves_the_engine_as_it_was(engine: Engine, acme: str) -> None:
    """After a write skipped for the lock, the next read writes the row; on SQLite the pooled
    connections wait on the busy timeout again (the write sets 0 for itself only)."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(str(engine.url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        load_snapshot(engine, acme)
        other.execute("ROLLBACK")
        other.close()
        assert rows(engine) == {}
        pooled = [engine.connect() for _ in range(3)]
        try:
            timeouts = {
                c.connection.driver_connection.execute("PRAGMA busy_timeout").fetchone()[0]
                for c in pooled
            }
        finally:
            for c in pooled:
                c.close()
        assert timeouts == {30_000}
    load_snapshot(engine, acme)
    assert rows(engine) == {acme: (version(engine, acme), snapcache.FORMAT)}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_write_while_sqlite_is_locked_in_another_thread_does_not_wait(
    engine: Engine, acme: str
) -> None:
    """The lock holder commits later: the read returned long before, without the row."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction(engine) as conn:  # BEGIN IMMEDIATE on a pooled connection
            conn.execute(update(Org).where(Org.id == "free").values(name="Free"))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        start = time.monotonic()
        snap = load_snapshot(engine, acme)
        assert time.monotonic() - start < 5
        assert len(snap.users) == 2 and rows(engine) == {}
    finally:
        release.set()
        holder.join()


def _valid_blob_of_another_kind() -> bytes:
    table = pyarrow.table({"x": pyarrow.array(["a"])})
    sink = pyarrow.BufferOutputStream()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: b"garbage bytes, not Arrow",
        lambda good: b"",
        lambda good: good[: len(good) // 2],
        lambda good: good[:-100],
        lambda good: _valid_blob_of_another_kind(),
    ],
    ids=["garbage", "empty", "half", "tail-cut", "other-stream"],
)
def test_a_damaged_blob_is_a_miss_and_is_rewritten(
    engine: Engine,
    acme: str,
    monkeypatch: pytest.MonkeyPatch,
    reads: list[str],
    damage: Any,
) -> None:
    load_snapshot(engine, acme)
    good = blob(engine, acme)
    assert snapcache.decode(good) is not None
    set_blob(engine, acme, damage(good))
    reads.clear()
    snap = load_snapshot(engine, acme)
    assert reads == [acme]  # read from the tables
    assert_same(snap, fresh(engine, acme, monkeypatch))
    assert snapcache.decode(blob(engine, acme)) is not None  # and stored again


def test_a_row_of_another_format_is_a_miss(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    snap = load_snapshot(engine, acme)
    snapcache.write(engine, acme, snap.state_version, poisoned(snap, "Old layout"))
    with transaction(engine) as conn:
        conn.execute(update(SnapshotCache).values(format="snapshot-0"))
    reads.clear()
    assert_same(load_snapshot(engine, acme), snap)
    assert reads == [acme]
    assert rows(engine) == {acme: (snap.state_version, snapcache.FORMAT)}


def test_frames_without_the_expected_columns_are_a_miss(
    engine: Engine, acme: str, reads: list[str]
) -> None:
    snap = load_snapshot(engine, acme)
    frames = snapcache.Frames(snap.users.drop(columns=["role"]), snap.licenses, snap.numbers)
    snapcache.write(engine, acme, snap.state_version, frames)
    reads.clear()
    assert "role" in load_snapshot(engine, acme).users.columns
    assert reads == [acme]


def test_one_row_per_org(engine: Engine, acme: str, org_file: Path) -> None:
    for _ in range(3):
        load_snapshot(engine, acme)
        load_org_file(engine, org_file)  # a new version each time
    load_snapshot(engine, acme)
    with transaction(engine, write=False) as conn:
        count = conn.execute(select(func.count()).select_from(SnapshotCache)).scalar_one()
    assert count == 1 and rows(engine)[acme][0] == version(engine, acme)


def _frames(users: int) -> snapcache.Frames:
    emails = [f"u{i}@x.example" for i in range(users)]
    cells = ["", "plain", "unit\x1fsep", "Næme ü 🙂", 'comma, "quote"\nline', " "]
    data = {c: [cells[(i + j) % len(cells)] for i in range(users)] for j, c in enumerate("abc")}
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in data.items()})
    frame.index = pd.Index(pd.Series(emails, dtype="str"), name="email")
    licenses = pd.DataFrame(
        {
            "email": pd.Series(emails[:2], dtype="str"),
            "license": pd.Series(["x", ""], dtype="str"),
        }
    )
    numbers = pd.DataFrame({c: pd.Series([], dtype="str") for c in ("number", "location", "email")})
    return snapcache.Frames(frame, licenses.iloc[: min(users, 2)], numbers)


@pytest.mark.parametrize("users", [0, 1, 7])
def test_encode_decode_keeps_every_cell_and_dtype(users: int) -> None:
    frames = _frames(users)
    got = snapcache.decode(snapcache.encode(frames))
    assert got is not None
    pd.testing.assert_frame_equal(got.users, frames.users)
    pd.testing.assert_frame_equal(got.licenses, frames.licenses)
    pd.testing.assert_frame_equal(got.numbers, frames.numbers)
    assert str(got.users.index.dtype) == "str" and got.users.index.name == "email"


def test_frames_that_are_not_text_are_not_stored(engine: Engine, acme: str) -> None:
    snap = load_snapshot(engine, acme)
    with transaction(engine) as conn:
        conn.execute(delete(SnapshotCache))
    users = snap.users.assign(count=1)
    snapcache.write(engine, acme, snap.state_version, snapcache.Frames(users, *_rest(snap)))
    assert rows(engine) == {}


def _rest(snap: OrgSnapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    return snap.licenses, snap.numbers


def test_offsets_past_the_data_are_a_miss_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Damaged bytes that still parse as a stream: an offset pointing outside the text must
    not be read (the stream is written uncompressed here so that the offsets can be found)."""
    monkeypatch.setattr(snapcache, "_COMPRESSION", None)
    frames = _frames(7)  # emails u0@x.example .. u6@x.example: 12 bytes each
    good = snapcache.encode(frames).to_pybytes()
    offsets = b"".join(n.to_bytes(8, "little") for n in (0, 12, 24, 36))
    assert good.count(offsets) == 1 and snapcache.decode(good) is not None
    for bad in (2**40, 5):  # past the end of the text; going backwards
        damaged = good.replace(offsets, offsets[:16] + bad.to_bytes(8, "little") + offsets[24:])
        assert snapcache.decode(damaged) is None


def test_license_holders_read_back_from_the_cache_equal_a_fresh_lookup(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    with transaction(engine) as conn:  # license rows of both users: positions 0, 0, 1
        conn.execute(insert(UserLicense).values(org_id=acme, email="bob@acme.example", license="x"))
    load_snapshot(engine, acme)  # a miss: the positions are found and stored
    reads.clear()
    hit = load_snapshot(engine, acme)
    assert reads == []
    got = hit.license_holders()
    assert got is not None and got.dtype == np.int32
    assert list(got) == list(holder_positions(hit.users, hit.licenses)) == [0, 0, 1]
    assert list(hit.users.index[got]) == list(hit.licenses["email"])
    assert_same(hit, fresh(engine, acme, monkeypatch))


def test_a_blob_of_the_previous_layout_is_a_miss(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    """A blob written before the license holders were stored (layout ``snapshot-1``): its
    row is not selected, and its bytes under the current row's format are not decoded."""
    snap = load_snapshot(engine, acme)
    with monkeypatch.context() as m:
        m.setattr(snapcache, "FORMAT", "snapshot-1")
        old = snapcache.encode(poisoned(snap, "Old layout")).to_pybytes()
        snapcache.write(engine, acme, snap.state_version, poisoned(snap, "Old layout"))
    assert rows(engine) == {acme: (snap.state_version, "snapshot-1")}
    assert snapcache.decode(old) is None
    reads.clear()
    assert_same(load_snapshot(engine, acme), snap)
    assert reads == [acme]
    assert rows(engine) == {acme: (snap.state_version, snapcache.FORMAT)}
    set_blob(engine, acme, old)
    reads.clear()
    assert_same(load_snapshot(engine, acme), snap)
    assert reads == [acme]


def test_encode_decode_keeps_the_license_holders() -> None:
    frames = _frames(7)
    holders = np.array([1, 0], dtype=np.int32)
    got = snapcache.decode(snapcache.encode(replace(frames, holders=holders)))
    assert got is not None and got.holders is not None
    assert got.holders.dtype == np.int32 and list(got.holders) == [1, 0]
    without = snapcache.decode(snapcache.encode(frames))
    assert without is not None and without.holders is None


def _unchecked_cell(holders: np.ndarray, licenses: int) -> pyarrow.Array:
    """The holders cell as ``encode`` writes it, whatever their length or type."""
    values = pyarrow.array(holders)
    return pyarrow.LargeListArray.from_arrays(
        pyarrow.array([0, len(values)], pyarrow.int64()), values
    )


@pytest.mark.parametrize(
    "holders",
    [
        np.array([1, 7], dtype=np.int32),  # past the 7 users
        np.array([-2, 0], dtype=np.int32),
        np.array([0], dtype=np.int32),  # not one per license row
        np.array([0, 1, 2], dtype=np.int32),
    ],
)
def test_license_holders_that_do_not_fit_are_a_miss(
    monkeypatch: pytest.MonkeyPatch, holders: np.ndarray
) -> None:
    monkeypatch.setattr(snapcache, "_holders_cell", _unchecked_cell)
    data = snapcache.encode(replace(_frames(7), holders=holders))
    assert snapcache.decode(data) is None


def test_license_holders_that_do_not_fit_are_not_stored(engine: Engine, acme: str) -> None:
    snap = load_snapshot(engine, acme)
    with transaction(engine) as conn:
        conn.execute(delete(SnapshotCache))
    frames = snapcache.Frames(snap.users, *_rest(snap), np.array([0], dtype=np.int32))
    snapcache.write(engine, acme, snap.state_version, frames)
    assert rows(engine) == {}


def test_a_stored_blob_with_damaged_holders_is_a_miss_and_is_rewritten(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    snap = load_snapshot(engine, acme)
    bad = np.full(len(snap.licenses), len(snap.users), dtype=np.int32)
    set_blob(
        engine, acme, snapcache.encode(replace(poisoned(snap, "Bad"), holders=bad)).to_pybytes()
    )
    want = fresh(engine, acme, monkeypatch)
    reads.clear()
    assert_same(load_snapshot(engine, acme), want)
    assert reads == [acme]
    assert_same(load_snapshot(engine, acme), snap)  # stored again, and a hit
    assert reads == [acme]
