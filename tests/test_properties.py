"""Properties of the diff over generated orgs, on SQLite and PostgreSQL (DESIGN: hypothesis).

- exporting an org and validating the export against it plans nothing, in either mode;
- applying a file twice equals applying it once (the second run is all unchanged);
- the plan never touches a user absent from the file;
- a crash mid-apply leaves the org as it was and the job FAILED.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from csvimport import catalog
from csvimport import engine as eng
from csvimport.model import Options, Status
from csvimport.store.export import org_rows
from csvimport.store.orgfile import load_org_file
from csvimport.store.snapshot import load_snapshot

CAT = catalog.default()
PACKAGES = list(CAT.packages)
NAMES = st.sampled_from(
    ["Anna", "Bjørn", "Åse", "Jürgen", "Søren", "Ida", "Ævar", "Olé", "Zoë", "Kai"]
)
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def orgs(draw: st.DrawFn) -> dict[str, Any]:
    """An org of 1-12 users with unique extensions per location and numbers of its own."""
    count = draw(st.integers(1, 12))
    users = []
    for i in range(count):
        location = draw(st.sampled_from(["HQ", "Oslo"]))
        user: dict[str, Any] = {
            "email": f"u{i}@org.example",
            "first_name": draw(NAMES),
            "last_name": draw(NAMES),
            "role": "full_admin"
            if i == 0
            else draw(st.sampled_from(["user", "user", "full_admin"])),
            "extension": str(1000 + i),
            "phone_number": f"+4722000{i:03d}",
            "location": location,
            "jabber_calling": draw(st.booleans()),
            "jabber_teams": draw(st.booleans()),
            "preferred_site": "org.webex.com",
            "title": draw(st.sampled_from(["", "Dr.", "=cmd", "Chef"])),
            "licenses": draw(
                st.lists(st.sampled_from([lic.id for lic in CAT.basic_licenses]), unique=True)
            ),
        }
        package = draw(st.sampled_from([*PACKAGES, None]))
        if package:
            user["package"] = package
        users.append({k: v for k, v in user.items() if v != ""})
    return {
        "org": {"id": "p", "name": "Prop AS", "kind": "customer", "package": "webex_voice"},
        "locations": [{"name": "HQ"}, {"name": "Oslo"}],
        "sites": ["org.webex.com"],
        "numbers": [{"number": f"+4722000{i:03d}", "location": "HQ"} for i in range(40)],
        "pools": [{"license": p} for p in PACKAGES],
        "users": users,
    }


def _load(db: Engine, org: dict[str, Any], folder: Path) -> None:
    path = folder / "org.yaml"
    path.write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    load_org_file(db, path)


def _export(db: Engine, folder: Path) -> Path:
    header, rows = org_rows(load_snapshot(db, "p"), CAT)
    path = folder / "export.csv"
    from csvimport.report import write_csv

    write_csv(path, header, rows)
    return path


@given(org=orgs(), mode=st.sampled_from(["add-only", "add-remove"]))
@SETTINGS
def test_export_then_validate_plans_nothing(engine: Engine, org: dict[str, Any], mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _load(engine, org, folder)
        result = eng.run(Options(file=_export(engine, folder), org="p", mode=mode), db=engine)  # type: ignore[arg-type]
        assert result.status == Status.COMPLETED, result.issues.to_dict("records")
        assert sum(result.operations.values()) == 0
        assert result.rows.unchanged == len(org["users"])


@st.composite
def edits(draw: st.DrawFn, org: dict[str, Any]) -> list[dict[str, str]]:
    """A users file over the org: some users edited, some new, the rest absent."""
    rows = []
    for user in org["users"]:
        if draw(st.booleans()):
            continue
        rows.append(
            {
                "User ID/Email (Required)": user["email"].upper()
                if draw(st.booleans())
                else user["email"],
                "Title": draw(st.sampled_from(["", "Boss", "Dr."])),
                "Department": draw(st.sampled_from(["", "IT", "Sales"])),
            }
        )
    for j in range(draw(st.integers(0, 3))):
        rows.append(
            {
                "User ID/Email (Required)": f"new{j}@org.example",
                "First Name": "Ny",
                "Last Name": "Bruker",
                "Extension": str(2000 + j),
                "Phone Number": f"+4722000{30 + j:03d}",
                "Location": "Oslo",
                "Jabber Calling": "TRUE",
                "Jabber with Webex Teams": "SANN",
                "Preferred Webex Site": "org.webex.com",
                "Webex Voice": "TRUE",
            }
        )
    return rows


def _write_users(path: Path, rows: list[dict[str, str]]) -> Path:
    header = [
        "User ID/Email (Required)",
        "First Name",
        "Last Name",
        "Extension",
        "Phone Number",
        "Location",
        "Jabber Calling",
        "Jabber with Webex Teams",
        "Preferred Webex Site",
        "Title",
        "Department",
        "Webex Voice",
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@given(data=st.data(), org=orgs())
@SETTINGS
def test_apply_twice_equals_once_and_absent_users_untouched(
    engine: Engine,
    dump: Callable[[Engine], dict[str, Any]],
    org: dict[str, Any],
    data: st.DataObject,
) -> None:
    rows = data.draw(edits(org))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _load(engine, org, folder)
        path = _write_users(folder / "users.csv", rows)
        named = {r["User ID/Email (Required)"].lower() for r in rows}
        first = eng.run(
            Options(file=path, org="p", dry_run=False, report_dir=folder / "r1"), db=engine
        )
        if not rows:  # a file without user rows is refused as a whole
            assert first.status == Status.REJECTED and first.issue_counts == {"empty_file": 1}
            return
        assert first.plan is not None
        assert set(first.plan.operations["email"].str.lower()) <= named
        state = _org_state(engine, dump)
        second = eng.run(Options(file=path, org="p", dry_run=False), db=engine)
        assert sum(second.operations.values()) == 0
        assert second.rows.unchanged == second.rows.valid
        assert _org_state(engine, dump) == state
        absent = {u["email"] for u in org["users"]} - named
        snap = load_snapshot(engine, "p")
        for email in absent:
            original = next(u for u in org["users"] if u["email"] == email)
            assert snap.users.loc[email, "title"] == original.get("title", "")


def _org_state(db: Engine, dump: Callable[[Engine], dict[str, Any]]) -> dict[str, Any]:
    """The org's tables, without jobs, audit and the version counter."""
    tables = dump(db)
    return {
        k: v
        for k, v in tables.items()
        if k not in ("jobs", "audit_events", "orgs", "org_locks", "meta")
    }


def test_crash_mid_apply_leaves_the_org_as_it_was(
    engine: Engine,
    dump: Callable[[Engine], dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = {
        "org": {"id": "p", "name": "Prop AS", "kind": "customer"},
        "locations": [{"name": "HQ"}],
        "sites": ["org.webex.com"],
        "numbers": [{"number": f"+4722000{i:03d}", "location": "HQ"} for i in range(10)],
        "pools": [{"license": "webex_voice"}],
        "users": [
            {"email": f"u{i}@org.example", "first_name": "A", "role": "full_admin"}
            for i in range(5)
        ],
    }
    _load(engine, org, tmp_path)
    rows = [{"User ID/Email (Required)": f"u{i}@org.example", "Title": "New"} for i in range(5)]
    rows += [
        {
            "User ID/Email (Required)": f"n{i}@org.example",
            "Extension": str(3000 + i),
            "Location": "HQ",
            "Jabber Calling": "TRUE",
            "Jabber with Webex Teams": "TRUE",
            "Webex Voice": "TRUE",
        }
        for i in range(3)
    ]
    path = _write_users(tmp_path / "users.csv", rows)
    before = dump(engine)
    import csvimport.apply as apply_mod

    real = apply_mod.apply_plan
    monkeypatch.setattr(
        apply_mod, "apply_plan", lambda db, plan, job: real(db, plan, job, fail_after=6)
    )
    result = eng.run(Options(file=path, org="p", dry_run=False), db=engine)
    assert result.status == Status.FAILED and result.exit_code == 5
    after = dump(engine)
    for table in before:
        if table not in ("jobs", "org_locks", "audit_events"):
            assert after[table] == before[table], table
    assert after["audit_events"] == before["audit_events"]
    from csvimport.store.jobs import get_job

    assert get_job(engine, result.job_id).status == "FAILED"
