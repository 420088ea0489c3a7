"""Golden cases: one folder per rule or scenario under ``tests/cases/users/``.

Each folder holds ``case.yaml`` (description, orgs to load from ``_orgs/``, mode, options,
setup steps, expected status), ``users.csv``, ``expected.csv`` (the ``(row, column, code)``
list) and ``expected_plan.jsonl`` (the operations, without the header line). Issues are
compared as tuples, never by message text (frictionless' habit).

``UPDATE_GOLDEN=1 pytest tests/test_cases.py`` rewrites the expected plans for review; the
expected issue lists are written by hand.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from csvimport import engine
from csvimport.model import Options
from csvimport.store.db import connect
from csvimport.store.orders import assign_order, load_orders
from csvimport.store.orgfile import load_org_file

ROOT = Path(__file__).parent / "cases" / "users"
ORGS = ROOT / "_orgs"
CASES = sorted(p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))


def _setup(db: Engine, case: Path, spec: dict[str, Any]) -> None:
    for org in spec.get("orgs", ["acme", "consumer", "globex"]):
        load_org_file(db, ORGS / f"{org}.yaml")
    for step in spec.get("setup", []):
        if "orders" in step:
            load_orders(db, case / step["orders"])
        if "assign" in step:
            assign_order(db, *step["assign"])


def _expected_issues(case: Path) -> list[tuple[str, str, str]]:
    with (case / "expected.csv").open(encoding="utf-8") as fh:
        return sorted((r["row"], r["column"], r["code"]) for r in csv.DictReader(fh))


def _plan_lines(report_dir: Path) -> list[dict[str, Any]]:
    path = report_dir / "plan.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def run_case(
    case: Path, tmp_path: Path
) -> tuple[Any, list[tuple[str, str, str]], list[dict[str, Any]]]:
    spec = yaml.safe_load((case / "case.yaml").read_text(encoding="utf-8"))
    db = connect(f"sqlite:///{tmp_path / 'case.db'}")
    _setup(db, case, spec)
    options = Options(
        file=case / spec.get("file", "users.csv"),
        org=spec.get("org", "acme"),
        mode=spec.get("mode", "add-only"),
        dry_run=True,
        max_deletes=spec.get("max_deletes"),
        report_dir=tmp_path / "reports",
    )
    result = engine.run(options, db=db)
    issues = sorted(
        ("" if r.row is None or str(r.row) == "<NA>" else str(r.row), r.column, r.code)
        for r in result.issues.itertuples()
    )
    return result, issues, _plan_lines(tmp_path / "reports")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load((case / "case.yaml").read_text(encoding="utf-8"))
    result, issues, plan = run_case(case, tmp_path)
    assert issues == _expected_issues(case)
    assert result.status.value == spec["status"]
    golden = case / "expected_plan.jsonl"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in plan), encoding="utf-8"
        )
    expected = [json.loads(x) for x in golden.read_text(encoding="utf-8").splitlines() if x]
    assert plan == expected


def test_every_org_code_has_a_case() -> None:
    """Done-when of the org rules: a golden case for every org-aware code of SPEC 5."""
    org_codes = {
        "unknown_location",
        "unknown_site",
        "number_not_in_inventory",
        "number_in_use",
        "extension_in_use",
        "missing_package",
        "license_unavailable",
        "license_suspended",
        "product_not_enabled",
        "license_managed_externally",
        "directory_sync_enabled",
        "directory_managed_attribute",
        "user_in_other_org",
        "public_domain",
        "no_admin_for_domain",
        "admin_downgrade",
        "last_admin",
        "user_not_found",
        "too_many_deletes",
    }
    covered = {code for case in CASES for _, _, code in _expected_issues(case)}
    assert org_codes <= covered, sorted(org_codes - covered)
