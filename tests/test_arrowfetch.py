"""Bulk snapshot reads: the Arrow paths give exactly what the row-by-row path gives."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Connection, Engine

from csvimport.store import snapcache
from csvimport.store.orgfile import load_org_file
from csvimport.store.snapshot import load_snapshot


@pytest.mark.parametrize("title", ["plain", "unit\x1fseparator", "record\x1eseparator", ""])
def test_snapshot_reads_every_cell_exactly(engine: Engine, tmp_path: Path, title: str) -> None:
    users = [
        {
            "email": f"U{i}@x.example",
            "first_name": f"Næme {i}",
            "title": title if i == 1 else "t",
            "jabber_calling": i % 2 == 0,
            "role": "full_admin" if i == 0 else "user",
            "licenses": ["basic_messaging"] if i % 3 else [],
        }
        for i in range(5)
    ]
    org = {"org": {"id": "a", "name": "A", "kind": "customer"}, "users": users}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    load_org_file(engine, path)
    snap = load_snapshot(engine, "a")
    assert sorted(snap.users.index) == [f"u{i}@x.example" for i in range(5)]
    assert snap.users.loc["u1@x.example", "title"] == title
    assert snap.users.loc["u0@x.example", "email"] == "U0@x.example"
    assert snap.users.loc["u0@x.example", "jabber_calling"] == "TRUE"
    assert snap.users.loc["u1@x.example", "jabber_calling"] == "FALSE"
    assert snap.users.loc["u3@x.example", "first_name"] == "Næme 3"
    assert sorted(snap.licenses["email"]) == ["u1@x.example", "u2@x.example", "u4@x.example"]
    assert str(snap.users["title"].dtype) == "str"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_packed_selects_run_one_at_a_time(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot reads the users beside the licenses and numbers, but SQLite's packed
    selects contend inside SQLite when they run together (``arrowfetch``): no two overlap."""
    users = [{"email": f"u{i}@x.example", "licenses": ["basic_messaging"]} for i in range(3)]
    org = {"org": {"id": "a", "name": "A", "kind": "customer"}, "users": users}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(org), encoding="utf-8")
    load_org_file(engine, path)
    spans: list[tuple[float, float]] = []
    real_execute = Connection.execute

    def slow_packed(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if "group_concat" not in str(statement):
            return real_execute(self, statement, *args, **kwargs)
        start = time.monotonic()
        time.sleep(0.2)  # long enough for the other thread's select to start meanwhile
        try:
            return real_execute(self, statement, *args, **kwargs)
        finally:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(Connection, "execute", slow_packed)
    monkeypatch.setattr(snapcache, "enabled", lambda: False)  # read the tables every time
    snap = load_snapshot(engine, "a")
    assert len(snap.users) == 3 and len(snap.licenses) == 3
    assert len(spans) >= 3  # users, licenses, numbers
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end


@pytest.mark.parametrize("location", ["Berlin", "Ber\x1flin", ""])
def test_narrow_selects_read_every_cell_exactly(
    engine: Engine, tmp_path: Path, location: str
) -> None:
    """Licenses and numbers are packed column by column: a separator inside a cell, and a
    number without a location or holder, read as the row-by-row path reads them."""
    numbers: list[dict[str, str]] = [{"number": "+4930123401"}, {"number": "+4930123402"}]
    if location:
        numbers[0]["location"] = location
    org = {
        "org": {"id": "a", "name": "A", "kind": "customer"},
        "locations": [{"name": location}] if location else [],
        "numbers": numbers,
        "users": [
            {
                "email": "u0@x.example",
                "phone_number": "+4930123402",
                "licenses": ["basic_messaging"],
            },
            {"email": "u1@x.example"},
        ],
    }
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    load_org_file(engine, path)
    snap = load_snapshot(engine, "a")
    assert snap.numbers.sort_values("number").values.tolist() == [
        ["+4930123401", location, ""],
        ["+4930123402", "", "u0@x.example"],
    ]
    assert snap.licenses.values.tolist() == [["u0@x.example", "basic_messaging"]]
    assert str(snap.numbers["location"].dtype) == "str"
