"""The store: schema, org files, snapshots, orders, jobs and locks, export."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select, update

from csvimport import catalog
from csvimport.model import Refused, StaleOrBusy
from csvimport.store import jobs, orders
from csvimport.store import snapshot as snapshot_mod
from csvimport.store.db import SchemaVersionError, connect, transaction
from csvimport.store.export import org_rows
from csvimport.store.models import Meta, OrgLock
from csvimport.store.orgfile import OrgFileError, load_org_file
from csvimport.store.snapshot import USER_COLUMNS, OrgNotFound, load_snapshot


def test_schema_version_recorded_and_newer_refused(db_url: str) -> None:
    engine = connect(db_url)
    with transaction(engine) as conn:
        assert conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar() == "2"
        conn.execute(update(Meta).where(Meta.key == "schema_version").values(value="99"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        connect(db_url)


def test_default_url_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSVIMPORT_DB", raising=False)
    engine = connect(None)
    assert engine.url.database == "csvimport.db"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    monkeypatch.setenv("CSVIMPORT_DB", f"sqlite:///{tmp_path / 'other.db'}")
    assert connect(None).url.database == str(tmp_path / "other.db")


def test_org_load_round_trip(engine: Engine, acme: str) -> None:
    snap = load_snapshot(engine, acme)
    s = snap.settings
    assert (s.id, s.name, s.kind, s.package, s.state_version) == (
        "acme",
        "Acme GmbH",
        "customer",
        "webex_suite",
        1,
    )
    assert s.default_licenses == tuple(catalog.default().default_licenses)
    assert s.integrations == ("miteam_meetings",)
    assert snap.locations == {"HQ", "Berlin"} and snap.sites == {"acme.webex.com"}
    anna = snap.users.loc["anna@acme.example"]
    assert anna["email"] == "Anna@acme.example"
    assert (anna["jabber_calling"], anna["role"], anna["package"]) == (
        "TRUE",
        "full_admin",
        "webex_suite",
    )
    bob = snap.users.loc["bob@acme.example"]
    assert (bob["extension"], bob["jabber_calling"], bob["package"], bob["role"]) == (
        "1002",
        "",
        "",
        "user",
    )
    assert sorted(snap.licenses.itertuples(index=False, name=None)) == [
        ("anna@acme.example", "basic_messaging"),
        ("anna@acme.example", "miteam_meetings"),
    ]
    numbers = dict(zip(snap.numbers["number"], snap.numbers["email"], strict=True))
    assert numbers == {"+4930123456": "anna@acme.example", "+4930123457": "", "+4930123458": ""}
    assert snap.free_accounts == {"carl@acme.example", "dora@gmail.com"}
    assert snap.other_org_emails == frozenset()


def test_snapshot_columns_and_dtypes(engine: Engine, acme: str) -> None:
    snap = load_snapshot(engine, acme)
    assert tuple(snap.users.columns) == USER_COLUMNS
    assert snap.users.index.name == "email"
    assert all(pd.api.types.is_string_dtype(t) for t in snap.users.dtypes)
    assert list(snap.pools.columns) == [
        "id",
        "license",
        "quantity",
        "status",
        "order",
        "subscription",
        "used",
    ]
    pools = snap.pools.set_index("license")
    assert pools.loc["webex_calling", "quantity"] == 100 and pools.loc["webex_calling", "used"] == 0
    assert pd.isna(pools.loc["webex_suite", "quantity"]) and pools.loc["webex_suite", "used"] == 1
    assert pools.loc["miteam_meetings", "used"] == 1
    assert list(snap.numbers.columns) == ["number", "location", "email"]


def test_snapshot_limits_cross_org_lookups(engine: Engine, acme: str, tmp_path: Path) -> None:
    other = tmp_path / "beta.yaml"
    other.write_text("org: {id: beta}\nusers: [{email: X@beta.example}, {email: y@beta.example}]\n")
    load_org_file(engine, other)
    snap = load_snapshot(
        engine, acme, emails=["x@beta.example", "dora@gmail.com", "nobody@x.example"]
    )
    assert snap.other_org_emails == {"x@beta.example"}
    assert snap.free_accounts == {"dora@gmail.com"}
    assert load_snapshot(engine, acme).other_org_emails == {"x@beta.example", "y@beta.example"}


def test_unknown_org(engine: Engine) -> None:
    with pytest.raises(OrgNotFound, match="nope"):
        load_snapshot(engine, "nope")


BAD_ORG = """\
org: {id: acme, kind: vendor, package: webex_sweet, trial: perhaps}
locations: [{name: HQ}]
numbers: [{number: "030 123", location: HQ}]
pools: [{license: webex_calling, quantity: -1, status: paused}]
users:
  - {email: anna@acme.example, location: Mars, jabber_calling: maybe}
  - {email: ANNA@acme.example}
  - {email: not-an-email}
  - {email: x@acme.example, package: webex_sweet, licenses: [gold], colour: red}
"""


def test_bad_org_file_names_key_and_value_and_loads_nothing(
    engine: Engine, acme: str, tmp_path: Path, dump: Callable[[Engine], Any]
) -> None:
    before = dump(engine)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_ORG, encoding="utf-8")
    with pytest.raises(OrgFileError) as caught:
        load_org_file(engine, bad)
    text = "\n".join(caught.value.problems)
    for expected in [
        "org.kind: 'vendor' is not a kind",
        "org.package: 'webex_sweet' is not a package (known: webex_voice",
        "org.trial: 'perhaps' is not a boolean",
        "numbers[0].number: '030 123' is not an E.164 number",
        "pools[0].quantity: -1",
        "pools[0].status: 'paused' is not a pool status",
        "users[0].location: 'Mars' is not a location",
        "users[0].jabber_calling: 'maybe' is not a boolean",
        "users[1].email: 'ANNA@acme.example' is listed twice",
        "users[2].email: 'not-an-email' is not a valid email",
        "users[3].package: 'webex_sweet' is not a package",
        "users[3].licenses[0]: 'gold' is not a basic or product license",
        "users[3].colour: 'colour' is not a known key",
    ]:
        assert expected in text
    assert dump(engine) == before


def test_replace_bumps_version_and_replaces_state(
    engine: Engine, acme: str, tmp_path: Path
) -> None:
    path = tmp_path / "acme2.yaml"
    path.write_text(
        "org: {id: acme, name: Acme AG, kind: customer}\n"
        "locations: [HQ]\nusers: [{email: zoe@acme.example, location: HQ}]\n"
    )
    load_org_file(engine, path)
    snap = load_snapshot(engine, acme)
    assert snap.state_version == 2 and snap.settings.name == "Acme AG"
    assert list(snap.users.index) == ["zoe@acme.example"]
    assert snap.licenses.empty and snap.pools.empty and snap.numbers.empty
    assert snap.locations == {"HQ"}


def test_json_org_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"org": {"id": "c1", "kind": "consumer"}, "users": [{"email": "a@b.example"}]}'
    )
    assert load_org_file(engine, path) == "c1"
    assert load_snapshot(engine, "c1").settings.kind == "consumer"


# -- orders ------------------------------------------------------------------------------


def test_orders_load_list_assign_twice_refused(engine: Engine, acme: str, tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        "orders: [{id: ORD-7, license: miteam_meetings, quantity: 50},"
        " {id: ORD-8, license: webex_voice, quantity: 3}]\n"
    )
    assert orders.load_orders(engine, path) == 2
    assert orders.load_orders(engine, path) == 0
    csv_path = tmp_path / "orders.csv"
    csv_path.write_text("id,license,quantity\nORD-9,webex_calling,10\n")
    assert orders.load_orders(engine, csv_path) == 1
    orders.assign_order(engine, "ORD-7", acme)
    orders.assign_order(engine, "ORD-8", acme)
    with pytest.raises(Refused, match="already assigned to org acme"):
        orders.assign_order(engine, "ORD-7", acme)
    listed = {o.id: o.status for o in orders.list_orders(engine)}
    assert listed == {
        "ORD-7": "assigned to acme",
        "ORD-8": "assigned to acme",
        "ORD-9": "unassigned",
    }
    snap = load_snapshot(engine, acme)
    pools = snap.pools.set_index("license")
    assert pools.loc["miteam_meetings", "quantity"] == 55
    assert (pools.loc["webex_voice", "quantity"], pools.loc["webex_voice", "order"]) == (3, "ORD-8")
    assert snap.state_version == 3


def test_orders_file_errors(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        "orders: [{id: A, license: gold, quantity: 0}, {license: webex_calling, quantity: 1}]\n"
    )
    with pytest.raises(orders.OrdersFileError) as caught:
        orders.load_orders(engine, path)
    text = "\n".join(caught.value.problems)
    assert "orders[0].license: 'gold'" in text and "orders[0].quantity: 0" in text
    assert "orders[1].id: is required" in text
    assert orders.list_orders(engine) == []


# -- jobs and the org lock ------------------------------------------------------------------


def test_job_lifecycle(engine: Engine) -> None:
    jid = jobs.create_job(engine, org="acme", file="users.csv", mode="add-only", dry_run=False)
    assert jobs.get_job(engine, jid).status == "CREATED"
    jobs.start_job(engine, jid)
    jobs.finish_job(engine, jid, "COMPLETED", {"rows": {"total": 3}}, state_version=4)
    job = jobs.get_job(engine, jid)
    assert (job.status, job.counts, job.state_version) == ("COMPLETED", {"rows": {"total": 3}}, 4)
    assert job.worker == jobs.worker_id() and job.finished_at is not None
    other = jobs.create_job(engine, org="beta")
    assert [j.id for j in jobs.list_jobs(engine, org="acme")] == [jid]
    assert {j.id for j in jobs.list_jobs(engine)} == {jid, other}
    with pytest.raises(jobs.JobNotFound):
        jobs.get_job(engine, "nope")


def test_lock_busy_release_and_stale(engine: Engine) -> None:
    jobs.acquire_org_lock(engine, "acme", "job-1")
    jobs.acquire_org_lock(engine, "acme", "job-1")  # re-entrant for its holder
    with pytest.raises(StaleOrBusy, match="org acme is busy with job job-1"):
        jobs.acquire_org_lock(engine, "acme", "job-2")
    jobs.acquire_org_lock(engine, "beta", "job-2")  # other orgs are free
    jobs.release_org_lock(engine, "acme", "job-1")
    jobs.acquire_org_lock(engine, "acme", "job-3")
    # a holder on another host that has been silent for too long is broken
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with transaction(engine) as conn:
        conn.execute(
            update(OrgLock)
            .where(OrgLock.org_id == "acme")
            .values(worker="elsewhere:1", heartbeat=old)
        )
    jobs.acquire_org_lock(engine, "acme", "job-4")
    # a holder on this host whose process is gone is broken at once
    with transaction(engine) as conn:
        conn.execute(
            update(OrgLock)
            .where(OrgLock.org_id == "acme")
            .values(worker=f"{jobs.worker_id().rsplit(':', 1)[0]}:999999999")
        )
    jobs.acquire_org_lock(engine, "acme", "job-5")


def test_recover_jobs_fails_dead_workers(engine: Engine) -> None:
    jid = jobs.create_job(engine, org="acme")
    jobs.start_job(engine, jid, worker=f"{jobs.worker_id().rsplit(':', 1)[0]}:999999999")
    jobs.acquire_org_lock(
        engine, "acme", jid, worker=f"{jobs.worker_id().rsplit(':', 1)[0]}:999999999"
    )
    live = jobs.create_job(engine, org="beta")
    jobs.start_job(engine, live)
    assert jobs.recover_jobs(engine) == [jid]
    assert jobs.get_job(engine, jid).status == "FAILED"
    assert jobs.get_job(engine, live).status == "RUNNING"
    jobs.acquire_org_lock(engine, "acme", "next")


# -- export ---------------------------------------------------------------------------------


def test_export_every_user_with_explicit_cells(engine: Engine, acme: str) -> None:
    cat = catalog.default()
    header, rows = org_rows(load_snapshot(engine, acme), cat)
    assert header[:16] == cat.canonical_columns()
    assert header[16:] == [p.header for p in cat.packages.values()] + [
        lic.header for lic in cat.basic_licenses
    ] + ["MiTeam Meetings"]
    table = {r[3]: dict(zip(header, r, strict=True)) for r in rows}
    assert set(table) == {"Anna@acme.example", "bob@acme.example"}
    anna, bob = table["Anna@acme.example"], table["bob@acme.example"]
    assert anna["Webex Suite"] == "TRUE" and anna["Webex Calling"] == "FALSE"
    assert (anna["Basic Messaging"], anna["Call on Webex"], anna["MiTeam Meetings"]) == (
        "TRUE",
        "FALSE",
        "TRUE",
    )
    assert all(bob[p.header] == "" for p in cat.packages.values())
    assert all(bob[lic.header] == "FALSE" for lic in cat.basic_licenses)
    assert (anna["Jabber Calling"], bob["Jabber Calling"], bob["Extension"]) == ("TRUE", "", "1002")


def _as_version_1(path: Path) -> None:
    """Rewrite a SQLite database into the schema-1 layout: the org tables as rowid tables."""
    import sqlite3

    raw = sqlite3.connect(path)  # foreign keys are off on a plain sqlite3 connection
    for name in ("users", "user_licenses", "numbers"):
        ddl = raw.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        indexes = raw.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (name,),
        ).fetchall()
        raw.execute(f"ALTER TABLE {name} RENAME TO old_{name}")
        raw.execute(ddl.replace("WITHOUT ROWID", ""))
        raw.execute(f"INSERT INTO {name} SELECT * FROM old_{name}")
        raw.execute(f"DROP TABLE old_{name}")
        for (sql,) in indexes:
            raw.execute(sql)
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()


def test_schema_1_sqlite_database_is_migrated(tmp_path: Path, org_file: Path) -> None:
    """A database of csvimport's first schema is upgraded in place: same rows, new layout,
    cascades intact."""
    path = tmp_path / "old.db"
    engine = connect(f"sqlite:///{path}")
    load_org_file(engine, org_file)
    before = load_snapshot(engine, "acme")
    engine.dispose()
    _as_version_1(path)
    engine = connect(f"sqlite:///{path}")
    after = load_snapshot(engine, "acme")
    pd.testing.assert_frame_equal(after.users, before.users)
    pd.testing.assert_frame_equal(after.licenses, before.licenses)
    pd.testing.assert_frame_equal(after.numbers, before.numbers)
    with transaction(engine) as conn:
        assert conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar() == "2"
        ddl = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master").fetchall())
        assert all("WITHOUT ROWID" in ddl[t] for t in ("users", "user_licenses", "numbers"))
        assert "ix_users_email" in ddl and "ix_numbers_org_email" in ddl
        assert not conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        conn.exec_driver_sql("DELETE FROM users WHERE email = 'anna@acme.example'")
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM user_licenses WHERE email = 'anna@acme.example'"
        ).scalar()
    assert left == 0 and len(before.licenses[before.licenses["email"] == "anna@acme.example"])


def test_snapshot_reads_extra_fields(engine: Engine, acme: str) -> None:
    """Catalogue fields without a column of their own come back from ``users.extra``."""
    from csvimport.store.models import User

    with transaction(engine) as conn:
        conn.execute(
            update(User)
            .where(User.org_id == acme, User.email == "anna@acme.example")
            .values(extra={"cost_center": "4711"})
        )
    users = load_snapshot(engine, acme).users
    assert users.loc["anna@acme.example", "cost_center"] == "4711"
    assert set(users["cost_center"].drop("anna@acme.example")) == {""}


def test_snapshot_is_read_again_when_a_commit_lands_during_the_read(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The licenses are read on a second connection: a change committed meanwhile must not
    leave a snapshot that mixes two states of the org."""
    from csvimport.store import snapshot as snapshot_mod
    from csvimport.store.models import Org, User

    real_side, real_settings = snapshot_mod._side_tables, snapshot_mod._settings
    settings_read = threading.Event()
    commits: list[int] = []

    def settings_then_signal(conn: Any, org_id: str) -> Any:
        found = real_settings(conn, org_id)
        settings_read.set()  # the main connection now reads version 1 of the org
        return found

    def side_after_a_commit(eng: Engine, org_id: str) -> Any:
        if not commits:
            assert settings_read.wait(10)
            with transaction(eng) as conn:
                conn.execute(
                    update(User)
                    .where(User.org_id == org_id, User.email == "anna@acme.example")
                    .values(title="Changed meanwhile")
                )
                conn.execute(
                    update(Org).where(Org.id == org_id).values(state_version=Org.state_version + 1)
                )
            commits.append(1)
        return real_side(eng, org_id)

    monkeypatch.setattr(snapshot_mod, "_side_tables", side_after_a_commit)
    monkeypatch.setattr(snapshot_mod, "_settings", settings_then_signal)
    snap = load_snapshot(engine, acme)
    assert commits and snap.state_version == 2
    assert snap.users.loc["anna@acme.example", "title"] == "Changed meanwhile"


def test_snapshot_of_an_org_that_never_stops_changing_is_refused(
    engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csvimport.store import snapshot as snapshot_mod

    monkeypatch.setattr(snapshot_mod, "_version", lambda eng, org_id: -1)
    with pytest.raises(StaleOrBusy, match="changed 3 times while it was being read"):
        load_snapshot(engine, acme)


def test_cross_org_lookup_is_never_prepared_on_the_server(engine: Engine, tmp_path: Path) -> None:
    """Looking the file's emails up among other orgs' users gives files of one length the
    same statement text; once psycopg had prepared it, PostgreSQL's plan for all values made
    a drop-folder worker ~30x slower. Run many times on one connection, the lookup finds the
    same emails and leaves no statement of it prepared (on SQLite it simply runs)."""
    for org, count in (("a", 1), ("b", 10)):
        users = [{"email": f"u{i}@{org}.example"} for i in range(count)]
        doc = {"org": {"id": org, "name": org.upper(), "kind": "customer"}, "users": users}
        path = tmp_path / f"{org}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        load_org_file(engine, path)
    wanted = snapshot_mod._Wanted(pd.Series(["u1@b.example", "nobody@b.example"], dtype="str"))
    with engine.connect() as conn:
        for _ in range(8):  # psycopg prepares a statement on its 5th run on a connection
            found = snapshot_mod._emails_of(conn, "a", "customer", wanted)
            assert found == {"u1@b.example"}
        if conn.dialect.name == "postgresql":
            prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
            assert not [s for s in prepared.scalars() if "users.email IN" in s]
