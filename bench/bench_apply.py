"""Apply throughput: a 100k-operation plan against an org of 50k users.

Run: ``.venv/bin/python -m bench.bench_apply [URL]`` (default: a fresh SQLite file in /tmp).
Prints operations per second of ``apply_plan`` (snapshot load time too, for reference).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from csvimport.apply import apply_plan
from csvimport.model import PLAN_COLUMNS, Plan
from csvimport.store.db import connect
from csvimport.store.orgfile import OrgData, store_org
from csvimport.store.snapshot import load_snapshot

EXISTING = 50_000


def org_data() -> OrgData:
    org = {
        "id": "bench",
        "name": "Bench",
        "kind": "customer",
        "package": "webex_suite",
        "directory_sync": False,
        "integrations": [],
        "default_licenses": ["basic_messaging"],
        "verified_domains": [],
        "claimed_domains": [],
        "trial": False,
    }
    users = [
        {
            "email": f"u{i}@bench.example",
            "email_display": f"U{i}@bench.example",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "extension": str(10000 + i),
            "location": "HQ",
            "jabber_calling": True,
            "jabber_teams": False,
            "role": "user",
            "package": "webex_calling",
        }
        for i in range(EXISTING)
    ]
    licenses = [
        {"email": f"u{i}@bench.example", "license": "basic_messaging"} for i in range(EXISTING)
    ]
    numbers = [
        {"number": f"+4930{1000000 + i}", "location": "HQ", "email": None} for i in range(60_000)
    ]
    return OrgData(org=org, locations=["HQ"], users=users, licenses=licenses, numbers=numbers)


def plan(version: int) -> Plan:
    rows: list[tuple[object, ...]] = []
    for i in range(20_000):  # 60k: add + package + basic license
        email = f"new{i}@bench.example"
        attrs = {
            "email": email,
            "first_name": "New",
            "last_name": str(i),
            "extension": str(200000 + i),
            "phone_number": f"+4930{1000000 + i}",
            "location": "HQ",
            "jabber_calling": "TRUE",
            "jabber_teams": "TRUE",
            "package": "webex_calling",
        }
        rows.append(("add_user", i + 2, email, None, {"attributes": attrs}))
        rows.append(("assign_license", i + 2, email, "webex_calling", {}))
        rows.append(("assign_license", i + 2, email, "basic_messaging", {}))
    for i in range(20_000):  # 20k modify
        changes = {"title": {"from": "", "to": "Engineer"}, "department": {"from": "", "to": "R&D"}}
        rows.append(("modify_user", 30_000 + i, f"u{i}@bench.example", None, {"changes": changes}))
    for i in range(20_000, 30_000):  # 10k remove license
        rows.append(("remove_license", 30_000 + i, f"u{i}@bench.example", "basic_messaging", {}))
    for i in range(40_000, 50_000):  # 10k delete
        rows.append(("delete_user", 30_000 + i, f"u{i}@bench.example", None, {}))
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    return Plan(
        org="bench", mode="add-remove", state_version=version, sha256=None, operations=frame
    )


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    engine = connect(url)
    version = store_org(engine, org_data())
    p = plan(version)
    start = time.perf_counter()
    apply_plan(engine, p, "bench-job")
    took = time.perf_counter() - start
    n = len(p.operations)
    print(f"{engine.dialect.name}: applied {n} operations in {took:.2f} s = {n / took:,.0f} ops/s")
    start = time.perf_counter()
    snap = load_snapshot(engine, "bench")
    print(f"snapshot of {len(snap.users)} users in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
