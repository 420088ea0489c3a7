"""Customers (SPEC 11) beyond the golden cases: templates, the reader's formats, what create and
attach write to the database, customers → users end to end, the command line, jobs and locks.

The row-by-row rules live in ``tests/cases/customers/`` (``test_customer_cases.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, insert, select

from csvimport import customers
from csvimport.cli import main
from csvimport.customers import catalog as customers_catalog
from csvimport.customers.apply import apply_customers
from csvimport.customers.store import status_of_org
from csvimport.customers.templates import list_templates, load_templates, parse_templates
from csvimport.model import Options, Refused, Result, StaleOrBusy
from csvimport.store import jobs
from csvimport.store.db import transaction
from csvimport.store.models import (
    AuditEvent,
    Customer,
    OrgProfile,
    Pool,
    SnapshotCache,
    User,
    UserLicense,
)
from csvimport.store.orgfile import OrgFileError, load_org_file
from csvimport.store.snapshot import load_snapshot

CASES = Path(__file__).parent / "cases" / "customers"
SHARED = CASES / "_shared"
SAMPLES = Path(__file__).parent.parent / "samples"
HEADER = [
    "Company Name", "Admin Email", "External Customer ID", "Country", "Provisioning ID",
    "Packages", "Webex Suite Quantity", "Webex Calling Quantity", "Address Line 1", "City",
    "Location Name", "Time Zone", "Existing Org ID", "Supported Location Confirmed",
]  # fmt: skip
Dump = Callable[[Engine], dict[str, list[tuple[Any, ...]]]]


def customer_row(ext: str, packages: str = "webex_suite;webex_calling", **cells: str) -> list[str]:
    base = {
        "Company Name": f"{ext.title()} GmbH",
        "Admin Email": f"admin@{ext}.example",
        "External Customer ID": ext,
        "Country": "DE",
        "Provisioning ID": "PROV-DE",
        "Packages": packages,
        "Webex Suite Quantity": "5",
        "Webex Calling Quantity": "",
        "Address Line 1": "Hauptstraße 1",
        "City": "Köln",
        "Location Name": "Zentrale",
        "Time Zone": "",
        "Existing Org ID": "",
        "Supported Location Confirmed": "TRUE",
    }
    base.update(cells)
    return [base[h] for h in HEADER]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER, sep: str = ",",
              encoding: str = "utf-8") -> Path:  # fmt: skip
    def quote(cell: str) -> str:
        return f'"{cell}"' if sep in cell or ";" in cell else cell

    lines = [sep.join(quote(c) for c in r) for r in [header, *rows]]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def run(path: Path, engine: Engine, apply: bool = True, **kw: Any) -> Result:
    return customers.run(Options(file=path, dry_run=not apply, **kw), db=engine)


@pytest.fixture
def templated(engine: Engine) -> Engine:
    """``engine`` with the shared case templates (PROV-DE, PROV-DK, PROV-BARE) loaded."""
    load_templates(engine, SHARED / "templates.yaml")
    return engine


def rows_of(engine: Engine, model: Any, *where: Any) -> list[dict[str, Any]]:
    with transaction(engine, write=False) as conn:
        return [dict(r._mapping) for r in conn.execute(select(model).where(*where))]


# --------------------------------------------------------------------------- templates


def test_templates_load_list_and_replace(engine: Engine, tmp_path: Path) -> None:
    assert load_templates(engine, SAMPLES / "templates.yaml") == ["PROV-DACH-01", "PROV-NORD-01"]
    changed = tmp_path / "t.yaml"
    changed.write_text(
        "templates:\n  - {name: Wholesale DACH, provisioning_id: PROV-DACH-01, country: AT}\n"
        "  - {name: Third, provisioning_id: PROV-3, authentication: sso}\n",
        encoding="utf-8",
    )
    load_templates(engine, changed)
    found = {t["provisioning_id"]: t for t in list_templates(engine)}
    assert sorted(found) == ["PROV-3", "PROV-DACH-01", "PROV-NORD-01"]
    assert found["PROV-DACH-01"]["country"] == "AT" and found["PROV-DACH-01"]["language"] is None
    assert found["PROV-3"]["authentication"] == "sso"
    assert found["PROV-3"]["email_invitations"] is True
    assert found["PROV-3"]["allow_admin_invites_on_attach"] is False


def test_bad_template_file_names_key_and_value_and_loads_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "templates": [
                    {"name": "Good", "provisioning_id": "P-1"},
                    {"name": "Auth", "provisioning_id": "P-2", "authentication": "ldap"},
                    {"name": "Land", "provisioning_id": "P-3", "country": "XX"},
                    {"name": "Twice", "provisioning_id": "P-1", "timezone": "Mars/Base"},
                    {"provisioning_id": "P-5", "language": "German", "colour": "red"},
                    {"name": "Flag", "provisioning_id": "P-6", "email_invitations": "maybe"},
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(OrgFileError) as err:
        load_templates(engine, bad)
    text = str(err.value)
    assert "nothing was loaded" in text
    for expected in (
        "templates[1].authentication: 'ldap'",
        "templates[2].country: 'XX'",
        "templates[3].provisioning_id: 'P-1'",
        "templates[3].timezone: 'Mars/Base'",
        "templates[4].name: is required",
        "templates[4].language: 'German'",
        "templates[4].colour: 'colour' is not a known key",
        "templates[5].email_invitations: 'maybe'",
    ):
        assert expected in text, expected
    assert list_templates(engine) == []


def test_template_name_taken_by_another_id_is_refused(engine: Engine, tmp_path: Path) -> None:
    load_templates(engine, SAMPLES / "templates.yaml")
    clash = tmp_path / "clash.yaml"
    clash.write_text("templates: [{name: wholesale dach, provisioning_id: OTHER}]\n", "utf-8")
    with pytest.raises(OrgFileError, match="'wholesale dach' is already the name of template"):
        load_templates(engine, clash)
    assert len(list_templates(engine)) == 2
    with pytest.raises(OrgFileError, match="the list is empty"):
        parse_templates({"templates": []}, "empty.yaml")


# --------------------------------------------------------------------------- catalogue


def test_catalog_is_data_and_satisfies_the_reader_protocol(tmp_path: Path) -> None:
    cat = customers_catalog.default()
    assert cat.key_field == "external_id"
    assert cat.match_header("  bereitstellungs-id ") == ("field", "provisioning_id")
    assert cat.match_header("Webex Calling Quantity") == ("quantity", "webex_calling_quantity")
    assert cat.match_header("webex_suite anzahl") == ("quantity", "webex_suite_quantity")
    assert cat.header_of("attendant_console_quantity") == "Attendant Console Quantity"
    assert cat.package_of("CX  Essentials") == "cx_essentials"
    assert cat.packages["attendant_console"].needs_any == (
        "webex_calling", "webex_suite", "cx_essentials",
    )  # fmt: skip
    assert (
        cat.packages["webex_suite"].level == 5 and cat.packages["cisco_calling_plan"].level is None
    )
    assert {"DE", "DK", "NO", "US"} <= cat.countries and len(cat.countries) == 249
    # A package added to users.yaml is orderable without touching customers.yaml.
    for name in ("users.yaml", "booleans.yaml", "public_domains.yaml", "countries.yaml"):
        (tmp_path / name).write_text((customers_catalog.SCHEMA_DIR / name).read_text("utf-8"))
    text = (customers_catalog.SCHEMA_DIR / "customers.yaml").read_text("utf-8")
    (tmp_path / "customers.yaml").write_text(
        text.replace("needs_any: [webex_calling", "needs_any: [webex_calls")
    )
    with pytest.raises(customers_catalog.SchemaError, match="webex_calls"):
        customers_catalog.load(tmp_path)


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("sep", "encoding", "suffix"),
    [(",", "utf-8", ".csv"), (";", "cp1252", ".csv"), ("\t", "utf-16", ".csv"), ("", "", ".xlsx")],
)
def test_same_plan_from_every_format(
    templated: Engine, tmp_path: Path, sep: str, encoding: str, suffix: str
) -> None:
    """The users' reader serves the customer file: encodings, delimiters, XLSX, translations."""
    german = ["Firmenname", "Administrator-E-Mail-Adresse", "Externe Kunden-ID", "Land",
              "Bereitstellungs-ID", "Pakete", "Webex Suite Anzahl", "Webex Calling Quantity",
              "Adresszeile 1", "Stadt", "Standortname", "Zeitzone", "Organisations-ID",
              "Standort bestätigt"]  # fmt: skip
    rows = [customer_row("globex"), customer_row("initech", "Webex Meetings", Country="")]
    path = tmp_path / f"kunden{suffix}"
    if suffix == ".xlsx":
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        for r in [german, *rows]:
            sheet.append(r)
        book.save(path)
    else:
        write_csv(path, rows, german, sep, encoding)
    result = run(path, templated, apply=False)
    assert result.exit_code == 0, result.issues.to_string()
    assert result.plan is not None
    ops = result.plan.operations
    assert ops["op"].tolist() == ["create_customer", "create_customer"]
    first = ops["data"].iloc[0]["attributes"]
    assert first["address"]["city"] == "Köln" and first["time_zone"] == "Europe/Berlin"
    assert first["limits"] == {"webex_calling": None, "webex_suite": 5}
    if suffix == ".csv":
        assert (result.encoding, result.delimiter) == (encoding, sep)


def test_reports_are_keyed_by_external_customer_id(templated: Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "c.csv", [customer_row("globex"), customer_row("bad", Country="XX")]
    )
    result = run(path, templated, apply=False, report_dir=tmp_path / "r")
    assert result.exit_code == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text("utf-8"))
    assert summary["org"] is None and summary["mode"] is None and summary["state_version"] is None
    assert summary["operations"] == {
        "create_customer": 1, "attach_customer": 0, "request_approval": 0, "update_customer": 0,
    }  # fmt: skip
    assert summary["rows"] == {
        "total": 2, "valid": 1, "rejected": 1, "unchanged": 0, "with_warnings": 0,
    }  # fmt: skip
    issues = (tmp_path / "r" / "issues.csv").read_text("utf-8-sig").splitlines()
    assert issues[0].startswith("Row Number,External Customer ID,Column,Code")
    assert issues[1].startswith("3,bad,Country,invalid_country,error")
    errors = (tmp_path / "r" / "errors.csv").read_text("utf-8-sig").splitlines()
    assert errors[0] == "Row Number,External Customer ID,Error Message"
    rejected = (tmp_path / "r" / "rejected.csv").read_text("utf-8-sig").splitlines()
    assert rejected[0].endswith(",Errors") and rejected[1].startswith("Bad GmbH,")
    plan = [json.loads(x) for x in (tmp_path / "r" / "plan.jsonl").read_text("utf-8").splitlines()]
    assert plan[0]["plan"]["org"] is None and plan[0]["plan"]["mode"] is None
    assert plan[1]["op"] == "create_customer" and plan[1]["external_id"] == "globex"
    assert plan[1]["attributes"]["org_id"] == "globex"


# --------------------------------------------------------------------------- what apply writes


def test_create_builds_the_org_from_template_packages_and_admin(
    templated: Engine, tmp_path: Path
) -> None:
    initech = {"Provisioning ID": "Nordics", "Country": "", "Location Name": "",
               "Webex Suite Quantity": ""}  # fmt: skip
    rows = [
        customer_row("globex", "webex_suite;webex_calling;cisco_calling_plan",
                     **{"Webex Calling Quantity": "40"}),
        customer_row("initech", "webex_meetings", **initech),
    ]  # fmt: skip
    result = run(write_csv(tmp_path / "c.csv", rows), templated)
    assert result.exit_code == 0, result.issues.to_string()
    snap = load_snapshot(templated, "globex")
    s = snap.settings
    assert (s.name, s.kind, s.package, s.trial) == ("Globex GmbH", "customer", "webex_suite", False)
    assert snap.locations == {"Zentrale"} and snap.sites == {"globex.webex.com"}
    pools = rows_of(templated, Pool, Pool.org_id == "globex")
    assert {(p["license"], p["quantity"], p["status"]) for p in pools} == {
        ("webex_calling", 40, "active"),
        ("webex_suite", 5, "active"),
        ("cisco_calling_plan", None, "active"),
    }
    assert {(p["subscription"], p["order_id"]) for p in pools} == {("Sub-DE", "wholesale:globex")}
    admin = snap.users.loc["admin@globex.example"]
    assert (admin["role"], admin["package"], admin["location"]) == (
        "full_admin",
        "webex_suite",
        "Zentrale",
    )
    assert set(snap.licenses["license"]) == set(s.default_licenses)
    profile = rows_of(templated, OrgProfile, OrgProfile.org_id == "initech")[0]
    assert (profile["authentication"], profile["language"], profile["country"]) == (
        "sso",
        "da_DK",
        "DK",
    )
    assert profile["time_zone"] == "Europe/Copenhagen" and profile["email_invitations"] is False
    initech = load_snapshot(templated, "initech")
    assert initech.locations == {"HQ"} and initech.settings.package == "webex_meetings"
    events = rows_of(templated, AuditEvent, AuditEvent.job_id == result.job_id)
    assert [(e["op"], e["org_id"], e["row"]) for e in events] == [
        ("create_customer", "globex", 2), ("create_customer", "initech", 3),
    ]  # fmt: skip
    assert jobs.get_job(templated, result.job_id).kind == "customers"


def test_attach_leaves_name_authentication_and_users_alone(
    templated: Engine, tmp_path: Path, dump: Dump
) -> None:
    load_org_file(templated, SHARED / "orgs" / "small.yaml")
    with transaction(templated) as conn:  # the org's own sign-in: SSO
        conn.execute(insert(OrgProfile), {"org_id": "small", "authentication": "sso"})
    before = dump(templated)
    version = load_snapshot(templated, "small").state_version
    row = customer_row(
        "small-cust", "webex_meetings", **{"Existing Org ID": "small", "Company Name": "Renamed AG"}
    )
    result = run(write_csv(tmp_path / "c.csv", [row]), templated)
    assert result.exit_code == 0 and result.operations["attach_customer"] == 1
    after = dump(templated)
    for table in ("users", "user_licenses", "org_profiles", "locations", "sites", "numbers"):
        assert after[table] == before[table], table
    with transaction(templated, write=False) as conn:  # its cache moved on with the org
        stmt = select(SnapshotCache.state_version).where(SnapshotCache.org_id == "small")
        assert conn.execute(stmt).scalar() == version + 1
    snap = load_snapshot(templated, "small")
    assert snap.settings.name == "Small Co" and snap.state_version == version + 1
    assert "webex_meetings" in set(snap.pools["license"])  # pools: from their table
    assert rows_of(templated, OrgProfile)[0]["authentication"] == "sso"
    admins = rows_of(templated, User, User.org_id == "small", User.role == "full_admin")
    assert [a["email"] for a in admins] == ["owner@small.example"]
    assert rows_of(templated, User, User.email == "admin@small-cust.example") == []
    new_pools = rows_of(
        templated, Pool, Pool.org_id == "small", Pool.order_id == "wholesale:small-cust"
    )
    assert [(p["license"], p["status"]) for p in new_pools] == [("webex_meetings", "active")]
    assert rows_of(templated, Customer)[0]["partner_role"] == "provisioning_admin"


def test_approve_attaches_a_waiting_customer_once(templated: Engine, tmp_path: Path) -> None:
    load_org_file(templated, SHARED / "orgs" / "verified.yaml")
    row = customer_row("ver", "webex_meetings", **{"Existing Org ID": "verified"})
    result = run(write_csv(tmp_path / "c.csv", [row]), templated)
    assert result.operations["request_approval"] == 1
    assert status_of_org(templated, "verified") == "pending_approval"
    assert rows_of(templated, Pool, Pool.org_id == "verified") == []
    done = customers.approve(templated, "ver")
    assert done == {"external_id": "ver", "org_id": "verified", "partner_role": "full_admin"}
    assert status_of_org(templated, "verified") == "provisioned"
    assert [p["license"] for p in rows_of(templated, Pool, Pool.org_id == "verified")] == [
        "webex_meetings"
    ]
    with pytest.raises(Refused, match="not pending_approval"):
        customers.approve(templated, "ver")
    assert status_of_org(templated, "small") is None


def test_update_follows_the_complete_package_list(templated: Engine, tmp_path: Path) -> None:
    first = customer_row("globex", "webex_suite;webex_calling;cisco_calling_plan")
    assert run(write_csv(tmp_path / "a.csv", [first]), templated).exit_code == 0
    dropped = customer_row("globex", "webex_suite;webex_calling", **{"Webex Suite Quantity": "9"})
    result = run(write_csv(tmp_path / "b.csv", [dropped]), templated, report_dir=tmp_path / "r")
    assert result.exit_code == 0 and result.operations["update_customer"] == 1
    assert result.issue_counts == {"package_downgrade": 1}
    assert result.rows.with_warnings == 1
    pools = {p["license"]: p for p in rows_of(templated, Pool, Pool.org_id == "globex")}
    assert pools["cisco_calling_plan"]["status"] == "cancelled"
    assert (pools["webex_suite"]["quantity"], pools["webex_suite"]["status"]) == (9, "active")
    again = run(write_csv(tmp_path / "c.csv", [first]), templated)
    assert again.operations["update_customer"] == 1 and again.issue_counts == {}
    pools = {p["license"]: p for p in rows_of(templated, Pool, Pool.org_id == "globex")}
    assert pools["cisco_calling_plan"]["status"] == "active" and len(pools) == 3
    assert run(write_csv(tmp_path / "d.csv", [first]), templated).rows.unchanged == 1


# --------------------------------------------------------------------------- customers → users


def users_csv(path: Path, rows: list[str]) -> Path:
    header = ("First Name,Last Name,User ID/Email (Required),Extension,Location,Jabber Calling,"
              "Jabber with Webex Teams,Preferred Webex Site,Webex Suite,Webex Calling")  # fmt: skip
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_customers_then_users_give_a_working_org(db_url: str, tmp_path: Path) -> None:
    cli = CliRunner()

    def call(*args: str) -> Any:
        return cli.invoke(main, ["--db", db_url, *args], catch_exceptions=False)

    assert call("templates", "load", str(SAMPLES / "templates.yaml")).exit_code == 0
    applied = call("customers", "apply", str(SAMPLES / "customers.csv"), "--format", "json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.output)["operations"]["create_customer"] == 2
    users = users_csv(tmp_path / "u.csv", [
        "Hank,Scorpio,hank@globex.example,2001,HQ,TRUE,TRUE,globex.webex.com,TRUE,FALSE",
        "Frank,Grimes,frank@globex.example,2002,HQ,FALSE,TRUE,globex.webex.com,FALSE,TRUE",
    ])  # fmt: skip
    imported = call("apply", str(users), "--org", "globex", "--format", "json")
    assert imported.exit_code == 0, imported.output
    shown = json.loads(call("org", "show", "globex", "--format", "json").output)
    used = {p["license"]: p["used"] for p in shown["pools"]}
    assert used == {"webex_suite": 2, "webex_calling": 1, "cisco_calling_plan": 0}
    customer = json.loads(call("customers", "show", "globex", "--format", "json").output)
    assert set(customer["packages"]) >= {"webex_suite", "webex_calling"}


def test_users_file_for_a_pending_customer_is_refused(templated: Engine, db_url: str,
                                                      tmp_path: Path) -> None:  # fmt: skip
    load_org_file(templated, SHARED / "orgs" / "claimed.yaml")
    row = customer_row("cla", "webex_meetings", **{"Existing Org ID": "claimed"})
    assert run(write_csv(tmp_path / "c.csv", [row]), templated).exit_code == 0
    users = tmp_path / "u.csv"
    users.write_text(
        "First Name,Last Name,Email,Jabber Calling,Jabber with Webex Teams,Webex Meetings\n"
        "Ann,Berg,a@claimed.example,TRUE,TRUE,TRUE\n",
        encoding="utf-8",
    )
    out = CliRunner().invoke(
        main,
        [
            "--db",
            db_url,
            "apply",
            str(users),
            "--org",
            "claimed",
            "--report-dir",
            str(tmp_path / "r"),
        ],
    )
    assert out.exit_code == 3, out.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text("utf-8"))
    assert summary["status"] == "REJECTED" and summary["issues"] == {"org_not_ready": 1}
    errors = (tmp_path / "r" / "errors.csv").read_text("utf-8-sig")
    assert "pending_approval, not provisioned" in errors
    assert rows_of(templated, User, User.email == "a@claimed.example") == []
    from csvimport.store.jobs import get_job

    assert get_job(templated, summary["job_id"]).status == "REJECTED"
    customers.approve(templated, "cla")
    again = CliRunner().invoke(main, ["--db", db_url, "apply", str(users), "--org", "claimed"])
    assert again.exit_code == 0, again.output


# --------------------------------------------------------------------------- command line


def test_cli_list_show_approve_and_exit_codes(
    templated: Engine, db_url: str, tmp_path: Path
) -> None:
    load_org_file(templated, SHARED / "orgs" / "hundred.yaml")
    rows = [
        customer_row("globex"),
        customer_row("h100", "webex_meetings", **{"Existing Org ID": "hundred"}),
    ]
    path = write_csv(tmp_path / "c.csv", rows)
    cli = CliRunner()

    def call(*args: str) -> Any:
        return cli.invoke(main, ["--db", db_url, *args])

    dry = call("customers", "validate", str(path))
    assert dry.exit_code == 0 and "would create 1, request approval for 1" in dry.output
    assert call("customers", "list", "--format", "json").output.strip() == "[]"
    assert call("customers", "apply", str(path)).exit_code == 0
    listed = json.loads(call("customers", "list", "--format", "json").output)
    assert listed == [
        {"external_id": "globex", "company_name": "Globex GmbH", "status": "provisioned",
         "org_id": "globex", "provisioning_id": "PROV-DE",
         "packages": ["webex_calling", "webex_suite"], "partner_role": "full_admin"},
        {"external_id": "h100", "company_name": "H100 GmbH", "status": "pending_approval",
         "org_id": None, "provisioning_id": "PROV-DE", "packages": ["webex_meetings"],
         "partner_role": None},
    ]  # fmt: skip
    text = call("customers", "show", "h100").output
    assert "pending_approval" in text and "customers approve h100" in text
    assert call("customers", "approve", "globex").exit_code == 1
    assert call("customers", "approve", "nosuch").exit_code == 2
    assert call("customers", "show", "nosuch").exit_code == 2
    approved = call("customers", "approve", "h100")
    assert approved.exit_code == 0 and "provisioning_admin" in approved.output
    shown = json.loads(call("customers", "show", "h100", "--format", "json").output)
    assert (shown["status"], shown["org_id"]) == ("provisioned", "hundred")
    assert list(shown) == list(listed[0])  # show gives the object list gives
    assert "PROV-DK" in call("templates", "list").output
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates: [{name: X, provisioning_id: P, country: ZZ}]\n", "utf-8")
    refused = call("templates", "load", str(bad))
    assert refused.exit_code == 2 and "templates[0].country: 'ZZ'" in refused.output
    rejected = call("customers", "validate", str(CASES / "missing_column" / "customers.csv"))
    assert rejected.exit_code == 3


# --------------------------------------------------------------------------- jobs, locks, failure


def test_failed_apply_leaves_nothing(templated: Engine, tmp_path: Path, dump: Dump) -> None:
    load_org_file(templated, SHARED / "orgs" / "small.yaml")
    before = dump(templated)
    rows = [customer_row("globex"), customer_row("sc", **{"Existing Org ID": "small"})]
    result = customers.run(
        Options(file=write_csv(tmp_path / "c.csv", rows), dry_run=False), db=templated, fail_after=2
    )
    assert result.exit_code == 5 and "nothing was applied" in result.notes[-1]
    after = dump(templated)
    for table in set(after) - {"jobs"}:
        assert after[table] == before[table], table
    assert jobs.get_job(templated, result.job_id).status == "FAILED"


def test_one_job_per_org_and_one_customers_job_at_a_time(templated: Engine, tmp_path: Path) -> None:
    load_org_file(templated, SHARED / "orgs" / "small.yaml")
    path = write_csv(tmp_path / "c.csv", [customer_row("sc", **{"Existing Org ID": "small"})])
    jobs.acquire_org_lock(templated, "small", "users-job")
    with pytest.raises(StaleOrBusy, match="small is busy"):
        run(path, templated)
    assert status_of_org(templated, "small") is None
    jobs.release_org_lock(templated, "small", "users-job")
    jobs.acquire_org_lock(templated, "@customers", "other-customers-job")
    with pytest.raises(StaleOrBusy, match="@customers is busy"):
        run(path, templated)
    jobs.release_org_lock(templated, "@customers", "other-customers-job")
    assert run(path, templated).exit_code == 0


def test_stale_plan_is_refused(templated: Engine, tmp_path: Path) -> None:
    load_org_file(templated, SHARED / "orgs" / "small.yaml")
    path = write_csv(tmp_path / "c.csv", [customer_row("sc", **{"Existing Org ID": "small"})])
    planned = run(path, templated, apply=False)
    assert planned.plan is not None
    load_org_file(templated, SHARED / "orgs" / "small.yaml")  # the org moves on to version 2
    with pytest.raises(StaleOrBusy, match="changed since the plan"):
        apply_customers(templated, planned.plan, "job-x", {"small": 1}, {})
    assert status_of_org(templated, "small") is None


def test_batch_job_contract(templated: Engine, tmp_path: Path) -> None:
    """What the drop-folder worker calls for ``DIR/_customers/``: reports, no job record."""
    path = write_csv(tmp_path / "c.csv", [customer_row("globex")])
    options = Options(file=path, dry_run=False, report_dir=tmp_path / "r", source="batch")
    result = customers.batch_job(options, templated, "batch-job-1")
    assert result.job_id == "batch-job-1" and result.exit_code == 0
    assert (
        json.loads((tmp_path / "r" / "summary.json").read_text("utf-8"))["job_id"] == "batch-job-1"
    )
    assert jobs.list_jobs(templated) == []
    events = rows_of(templated, AuditEvent, AuditEvent.job_id == "batch-job-1")
    assert [e["op"] for e in events] == ["create_customer"]
    assert rows_of(templated, UserLicense, UserLicense.org_id == "globex")
