"""Applying a plan: every operation kind, the audit trail, stale plans, all-or-nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event, select

from csvimport.apply import apply_plan
from csvimport.model import PLAN_COLUMNS, Plan, StaleOrBusy
from csvimport.store.db import session
from csvimport.store.models import AuditEvent
from csvimport.store.snapshot import load_snapshot


def make_plan(version: int, ops: list[dict[str, Any]], org: str = "acme") -> Plan:
    rows = [
        {
            "op": o["op"],
            "row": o.get("row"),
            "email": o["email"],
            "license": o.get("license"),
            "data": o.get("data", {}),
        }
        for o in ops
    ]
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    return Plan(org=org, mode="add-remove", state_version=version, sha256=None, operations=frame)


OPS: list[dict[str, Any]] = [
    {
        "op": "add_user",
        "row": 2,
        "email": "Eve@acme.example",
        "data": {
            "attributes": {
                "first_name": "Eve",
                "email": "Eve@acme.example",
                "phone_number": "+49 30 123458",
                "location": "HQ",
                "jabber_calling": "TRUE",
                "jabber_teams": "FALSE",
                "package": "webex_calling",
            }
        },
    },
    {"op": "assign_license", "row": 2, "email": "Eve@acme.example", "license": "webex_calling"},
    {"op": "assign_license", "row": 2, "email": "Eve@acme.example", "license": "basic_messaging"},
    {
        "op": "modify_user",
        "row": 3,
        "email": "anna@acme.example",
        "data": {
            "changes": {
                "title": {"from": "", "to": "CEO"},
                "phone_number": {"from": "+4930123456", "to": "+4930123457"},
            }
        },
    },
    {"op": "remove_license", "row": 3, "email": "anna@acme.example", "license": "miteam_meetings"},
    {"op": "remove_license", "row": 3, "email": "anna@acme.example", "license": "webex_suite"},
    {"op": "assign_license", "row": 3, "email": "anna@acme.example", "license": "webex_calling"},
    {"op": "delete_user", "row": 4, "email": "BOB@acme.example"},
    {
        "op": "claim_user",
        "row": 5,
        "email": "carl@acme.example",
        "data": {
            "attributes": {"first_name": "Carl", "last_name": "Claimed", "role": "full_admin"}
        },
    },
    {"op": "assign_license", "row": 5, "email": "carl@acme.example", "license": "webex_meetings"},
]


def test_apply_every_kind_with_audit(engine: Engine, acme: str) -> None:
    version = apply_plan(engine, make_plan(1, OPS), "job-1")
    assert version == 2
    snap = load_snapshot(engine, acme)
    assert snap.state_version == 2
    users = snap.users
    assert sorted(users.index) == ["anna@acme.example", "carl@acme.example", "eve@acme.example"]
    eve = users.loc["eve@acme.example"]
    assert (eve["email"], eve["package"], eve["jabber_calling"], eve["jabber_teams"]) == (
        "Eve@acme.example",
        "webex_calling",
        "TRUE",
        "FALSE",
    )
    anna = users.loc["anna@acme.example"]
    assert (anna["title"], anna["package"], anna["phone_number"]) == (
        "CEO",
        "webex_calling",
        "+4930123457",
    )
    carl = users.loc["carl@acme.example"]
    assert (carl["last_name"], carl["role"], carl["package"]) == (
        "Claimed",
        "full_admin",
        "webex_meetings",
    )
    assert sorted(snap.licenses.itertuples(index=False, name=None)) == [
        ("anna@acme.example", "basic_messaging"),
        ("eve@acme.example", "basic_messaging"),
    ]
    numbers = dict(zip(snap.numbers["number"], snap.numbers["email"], strict=True))
    assert numbers == {
        "+4930123456": "",
        "+4930123457": "anna@acme.example",
        "+4930123458": "eve@acme.example",
    }
    # the claimed account left the consumer org, which moved on a version
    free = load_snapshot(engine, "free")
    assert list(free.users.index) == ["dora@gmail.com"] and free.state_version == 2
    with session(engine, write=False) as sess:
        events = sess.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.seq, e.op, e.row, e.email, e.license) for e in events] == [
        (i, o["op"], o["row"], o["email"].lower(), o.get("license")) for i, o in enumerate(OPS, 1)
    ]
    assert {e.job_id for e in events} == {"job-1"} and {e.org_id for e in events} == {"acme"}
    by_op = {(e.op, e.email): e for e in events}
    assert by_op["modify_user", "anna@acme.example"].after == {
        "title": "CEO",
        "phone_number": "+4930123457",
    }
    deleted = by_op["delete_user", "bob@acme.example"]
    assert (
        deleted.before is not None
        and deleted.before["first_name"] == "Bob"
        and deleted.after is None
    )
    assert by_op["claim_user", "carl@acme.example"].before == {"org": "free"}


def test_numbers_swap(engine: Engine, acme: str) -> None:
    ops = [
        {"op": "modify_user", "row": 2, "email": "anna@acme.example",
         "data": {"changes": {"phone_number": {"from": "+4930123456", "to": "+4930123457"}}}},
        {"op": "modify_user", "row": 3, "email": "bob@acme.example",
         "data": {"changes": {"phone_number": {"from": "", "to": "+4930123456"}}}},
    ]  # fmt: skip
    apply_plan(engine, make_plan(1, ops), "job-1")
    numbers = load_snapshot(engine, acme).numbers
    held = dict(zip(numbers["number"], numbers["email"], strict=True))
    assert held["+4930123456"] == "bob@acme.example" and held["+4930123457"] == "anna@acme.example"


def test_a_role_cleared_in_a_plan_becomes_the_default_role(engine: Engine, acme: str) -> None:
    """``users.role`` is never NULL: a reviewed plan whose change clears a role (a plan file
    edited by hand, say) sets it to "user" instead of failing the whole apply."""
    ops = [
        {"op": "modify_user", "row": 2, "email": "anna@acme.example",
         "data": {"changes": {"role": {"from": "full_admin", "to": ""}, "title": {"to": "Lead"}}}},
    ]  # fmt: skip
    apply_plan(engine, make_plan(1, ops), "job-1")
    anna = load_snapshot(engine, acme).users.loc["anna@acme.example"]
    assert (anna["role"], anna["title"]) == ("user", "Lead")


def test_stale_plan_refused_including_the_same_plan_twice(
    engine: Engine, acme: str, dump: Callable[[Engine], Any]
) -> None:
    plan = make_plan(1, OPS[:3])
    apply_plan(engine, plan, "job-1")
    before = dump(engine)
    with pytest.raises(StaleOrBusy, match=r"plan version 1, org now 2"):
        apply_plan(engine, plan, "job-2")
    assert dump(engine) == before


@pytest.mark.parametrize("fail_after", [0, 1, 3, 8, len(OPS)])
def test_injected_failure_leaves_everything_as_before(
    engine: Engine, acme: str, fail_after: int, dump: Callable[[Engine], Any]
) -> None:
    before = dump(engine)
    with pytest.raises(RuntimeError, match="injected failure"):
        apply_plan(engine, make_plan(1, OPS), "job-1", fail_after=fail_after)
    assert dump(engine) == before
    assert apply_plan(engine, make_plan(1, OPS), "job-2") == 2  # and the org is usable


def test_database_error_rolls_back(
    engine: Engine, acme: str, dump: Callable[[Engine], Any]
) -> None:
    before = dump(engine)
    ops = [
        *OPS[:3],
        {
            "op": "assign_license",
            "row": 9,
            "email": "anna@acme.example",
            "license": "basic_messaging",
        },
    ]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        apply_plan(engine, make_plan(1, ops), "job-1")
    assert dump(engine) == before


def test_unknown_operation_refused_before_writing(
    engine: Engine, acme: str, dump: Callable[[Engine], Any]
) -> None:
    before = dump(engine)
    with pytest.raises(ValueError, match="unknown operation 'explode'"):
        apply_plan(engine, make_plan(1, [{"op": "explode", "email": "a@b.example"}]), "job-1")
    assert dump(engine) == before


def test_empty_plan_bumps_version(engine: Engine, acme: str) -> None:
    assert apply_plan(engine, make_plan(1, []), "job-1") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a SQLite pragma
def test_an_apply_leaves_sqlites_page_cache_as_it_was(engine: Engine, acme: str) -> None:
    """The apply's larger page cache is its own: the pooled connection it used is handed
    back with SQLite's cache size as before (a dry run through it keeps no extra pages)."""

    def sizes() -> list[int]:
        with engine.connect() as conn:
            return [int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or 0)]

    before = sizes()
    seen: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _watch(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            seen.append(int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or 0))

    apply_plan(engine, make_plan(1, OPS), "job-1")
    event.remove(engine, "before_cursor_execute", _watch)
    assert seen and seen[0] == -131072  # larger while the plan was written
    assert sizes() == before == [-2000]
