"""Whole-plan accounting: seats in file order, removals freeing seats wherever they stand."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from csvimport import engine as eng
from csvimport.model import Options
from csvimport.store.orgfile import load_org_file

HEADER = [
    "User ID/Email (Required)",
    "First Name",
    "Last Name",
    "Extension",
    "Location",
    "Jabber Calling",
    "Jabber with Webex Teams",
    "Preferred Webex Site",
    "Webex Calling",
    "Webex Meetings",
]


def _org(engine: Engine, tmp_path: Path) -> None:
    org = {
        "org": {"id": "seats", "name": "Seats AS", "kind": "customer"},
        "locations": [{"name": "HQ"}],
        "sites": ["s.webex.com"],
        "pools": [
            {"license": "webex_calling", "quantity": 10, "status": "active", "order": "ORD-9"},
            {"license": "webex_meetings", "quantity": 50},
        ],
        "users": [
            {
                "email": f"old{i}@s.example",
                "first_name": "Old",
                "role": "full_admin" if i == 0 else "user",
                "package": "webex_calling",
                "extension": str(100 + i),
                "location": "HQ",
                "jabber_calling": True,
                "jabber_teams": True,
                "preferred_site": "s.webex.com",
            }
            for i in range(2)
        ],
    }
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(org), encoding="utf-8")
    load_org_file(engine, path)


def _new(i: int) -> list[str]:
    return [
        f"new{i}@s.example",
        "Ny",
        "Bruker",
        str(2000 + i),
        "HQ",
        "TRUE",
        "TRUE",
        "s.webex.com",
        "TRUE",
        "",
    ]


def _removal(i: int) -> list[str]:
    return [f"old{i}@s.example", "", "", "", "", "", "", "", "", "TRUE"]


def _run(engine: Engine, tmp_path: Path, rows: list[list[str]]) -> set[tuple[int, str, str]]:
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    result = eng.run(Options(file=path, org="seats"), db=engine)
    return {(int(r.row), r.column, r.code) for r in result.issues.itertuples()}


def test_ten_rows_eight_free_seats_reject_the_last_two(engine: Engine, tmp_path: Path) -> None:
    _org(engine, tmp_path)
    found = _run(engine, tmp_path, [_new(i) for i in range(10)])
    assert found == {
        (10, "Webex Calling", "license_unavailable"),
        (11, "Webex Calling", "license_unavailable"),
    }


@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_two_removals_anywhere_free_the_seats(engine: Engine, tmp_path: Path, where: str) -> None:
    _org(engine, tmp_path)
    adds = [_new(i) for i in range(10)]
    removals = [_removal(0), _removal(1)]
    rows = {
        "first": removals + adds,
        "last": adds + removals,
        "middle": adds[:5] + removals + adds[5:],
    }[where]
    assert _run(engine, tmp_path, rows) == set()


def test_message_names_pool_shortfall_and_rows(engine: Engine, tmp_path: Path) -> None:
    _org(engine, tmp_path)
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *[_new(i) for i in range(10)]])
    result = eng.run(Options(file=path, org="seats"), db=engine)
    message = result.issues["message"].iloc[0]
    assert "Webex Calling" in message and "ORD-9" in message
    assert "8 of 10 seats left" in message and "rows 10, 11" in message


@given(
    st.lists(st.sampled_from(["a", "b", "c", "", "d"]), max_size=30),
    st.lists(st.sampled_from(["a", "b", "c", "x"]), unique=True),
)
def test_run_positions_equal_a_plain_lookup(keys: list[str], among: list[str]) -> None:
    """Looking up each run of equal keys once gives every key's position, in any order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from csvimport.plan import _run_positions

    k = pa.array(keys, type=pa.large_string())
    a = pa.array(among, type=pa.large_string())
    want = pc.index_in(k, value_set=a).fill_null(-1).to_numpy(zero_copy_only=False)
    assert list(_run_positions(k, a)) == list(np.asarray(want, dtype=np.int64))


@pytest.mark.parametrize("cache", ["on", "off"])
def test_an_apply_leaves_the_snapshot_cache_current(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    """After an apply changed the org, its cached snapshot is of the new state (the next dry
    run starts warm); with the cache off nothing is written."""
    from sqlalchemy import select

    from csvimport.store.db import transaction
    from csvimport.store.models import Org, SnapshotCache
    from csvimport.store.snapshot import load_snapshot

    monkeypatch.setenv("CSVIMPORT_SNAPSHOT_CACHE", cache)
    _org(engine, tmp_path)
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([HEADER, _new(0)])
    result = eng.run(Options(file=path, org="seats", dry_run=False), db=engine)
    assert result.operations["add_user"] == 1
    with transaction(engine, write=False) as conn:
        now = conn.execute(select(Org.state_version).where(Org.id == "seats")).scalar_one()
        cached = conn.execute(
            select(SnapshotCache.state_version).where(SnapshotCache.org_id == "seats")
        ).scalar()
    assert now == result.state_version
    if cache == "off":
        assert cached is None
        return
    assert cached == now
    assert "new0@s.example" in load_snapshot(engine, "seats").users.index
