"""Golden cases of the customer file (SPEC 11): one generic test over ``tests/cases/customers/``.

Each case is a folder:

- ``customers.csv``: the file under test;
- ``case.yaml``: the setup (``orgs`` from ``_shared/orgs/``, a ``before`` customers file applied
  first, ``apply`` or a dry run, an ``approve`` after it) and the expectations: ``exit``,
  ``issues`` as ``[row, column, code]`` (frictionless style: never message text),
  ``operations`` as ``[op, row, external_id]``, ``customers`` (status, org id, partner role and
  packages from ``customers show`` after the run), and with ``approve`` the same facts
  ``before_approve`` and the command's ``approve_exit``.

Every case starts from the templates of ``_shared/templates.yaml`` and runs on SQLite and
PostgreSQL. ``CSVIMPORT_BLESS=1 pytest tests/test_customer_cases.py -k sqlite`` rewrites the
expectations from what the engine does now: review the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from csvimport import customers
from csvimport.customers.store import CustomerNotFound, get_customer
from csvimport.customers.templates import load_templates
from csvimport.model import Options, Refused, Result
from csvimport.store.orgfile import load_org_file

CASES = Path(__file__).parent / "cases" / "customers"
SHARED = CASES / "_shared"
SETUP_KEYS = ("description", "orgs", "before", "apply", "approve")


def _case_dirs() -> list[Path]:
    return sorted(d for d in CASES.iterdir() if (d / "case.yaml").is_file())


def _issues(result: Result) -> list[list[Any]]:
    found = result.issues
    rows = [None if r is None or str(r) == "<NA>" else int(r) for r in found["row"]]
    cells = zip(rows, found["column"], found["code"], strict=True)
    out = [[r, str(c), str(k)] for r, c, k in cells]
    return sorted(out, key=lambda i: (i[0] or 0, i[1], i[2]))


def _operations(result: Result) -> list[list[Any]]:
    if result.plan is None:
        return []
    ops = result.plan.operations
    return [
        [str(op), int(row), str(ext)]
        for op, row, ext in zip(ops["op"], ops["row"], ops["external_id"], strict=True)
    ]


def _facts(engine: Engine, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ext in ids:
        try:
            c = get_customer(engine, ext)
        except CustomerNotFound:
            out[ext] = None
            continue
        out[ext] = {k: c[k] for k in ("status", "org_id", "partner_role", "packages")}
    return out


def _run_case(case: Path, spec: dict[str, Any], engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """Set the case up, run it; return what happened in the shape of the expectations."""
    load_templates(engine, SHARED / "templates.yaml")
    for org in spec.get("orgs") or []:
        load_org_file(engine, SHARED / "orgs" / f"{org}.yaml")
    if spec.get("before"):
        first = customers.run(Options(file=case / spec["before"], dry_run=False), db=engine)
        assert first.exit_code == 0, first.issues.to_string()
    options = Options(
        file=case / "customers.csv",
        dry_run=not spec.get("apply", False),
        report_dir=tmp_path / "reports",
    )
    result = customers.run(options, db=engine)
    got: dict[str, Any] = {
        "exit": result.exit_code,
        "issues": _issues(result),
        "operations": _operations(result),
    }
    assert (tmp_path / "reports" / "summary.json").is_file()
    ids = sorted({op[2] for op in got["operations"]} | set(filter(None, [spec.get("approve")])))
    if spec.get("approve"):
        got["before_approve"] = _facts(engine, ids)
        try:
            customers.approve(engine, spec["approve"])
            got["approve_exit"] = 0
        except Refused:
            got["approve_exit"] = 1
    if ids and (spec.get("apply") or spec.get("approve")):
        got["customers"] = _facts(engine, ids)
    return got


@pytest.mark.parametrize("case", _case_dirs(), ids=lambda p: p.name)
def test_customer_case(case: Path, engine: Engine, tmp_path: Path) -> None:
    spec = yaml.safe_load((case / "case.yaml").read_text(encoding="utf-8"))
    got = _run_case(case, spec, engine, tmp_path)
    if os.environ.get("CSVIMPORT_BLESS") and engine.dialect.name == "sqlite":
        setup = {k: spec[k] for k in SETUP_KEYS if k in spec}
        text = yaml.safe_dump(
            {**setup, **got},
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=None,
        )
        (case / "case.yaml").write_text(text, encoding="utf-8")
        return
    expected = {k: v for k, v in spec.items() if k not in SETUP_KEYS}
    expected.setdefault("issues", [])
    expected.setdefault("operations", [])
    assert got == expected


def test_every_section_11_code_has_a_case() -> None:
    """SPEC 11's codes each have a golden case named after them (the done criterion)."""
    codes = {
        "missing_required_field", "invalid_email", "invalid_country", "unknown_template",
        "unknown_package", "package_dependency", "field_too_long", "invalid_company_name",
        "duplicate_external_id", "location_not_confirmed", "unknown_org",
        "org_already_managed", "trial_org_not_supported", "package_downgrade",
    }  # fmt: skip
    names = {d.name for d in _case_dirs()}
    assert codes <= names
    for code in codes:
        spec = yaml.safe_load((CASES / code / "case.yaml").read_text(encoding="utf-8"))
        assert code in {i[2] for i in spec["issues"]}, code
