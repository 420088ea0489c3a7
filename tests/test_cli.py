"""The command line as an administrator meets it: exit codes (SPEC 7), output, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from csvimport.cli import main

ORG = Path(__file__).parent / "cases" / "users" / "_orgs" / "acme.yaml"
HEADER = (
    "User ID/Email (Required),Extension,Phone Number,Location,Jabber Calling,"
    "Jabber with Webex Teams,Preferred Webex Site,Webex Calling\n"
)
GOOD = "eve@acme.example,1003,+4930100003,HQ,TRUE,TRUE,acme.webex.com,TRUE\n"
BAD = "not-an-email,1004,+4930100004,Berlin,TRUE,TRUE,acme.webex.com,TRUE\n"


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, ["--db", f"sqlite:///{tmp_path / 'cli.db'}", *args])
    return result.exit_code, result.stdout, result.stderr


def users(tmp_path: Path, *rows: str) -> str:
    path = tmp_path / "users.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return str(path)


def test_exit_0_and_json_summary_alone_on_stdout(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "validate", users(tmp_path, GOOD), "--format", "json")
    assert code == 0
    summary = json.loads(out)
    assert summary["status"] == "COMPLETED" and summary["rows"]["total"] == 1


def test_exit_1_rows_rejected_and_text_summary(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "validate", users(tmp_path, GOOD, BAD))
    assert code == 1
    assert "invalid_email" in out and "row 3" in out
    assert "org checks skipped" in out


def test_exit_3_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(HEADER, encoding="utf-8")
    code, out, _ = cli(tmp_path, "validate", str(path), "--report-dir", str(tmp_path / "r"))
    assert code == 3 and "empty_file" in out
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "REJECTED"


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "no-such-file.csv"],
        ["validate", "x.csv", "--mode", "sideways"],
        ["apply", "x.csv"],
        ["validate", "{users}", "--org", "nobody"],
        ["frobnicate"],
    ],
)
def test_exit_2_usage_errors_are_one_line(tmp_path: Path, args: list[str]) -> None:
    args = [a.replace("{users}", users(tmp_path, GOOD)) for a in args]
    code, out, err = cli(tmp_path, *args)
    assert code == 2
    assert "Traceback" not in out + err
    assert err.strip()


def test_apply_then_stale_plan_exit_4(tmp_path: Path) -> None:
    assert cli(tmp_path, "org", "load", str(ORG))[0] == 0
    file = users(tmp_path, GOOD)
    code, _, _ = cli(
        tmp_path, "validate", file, "--org", "acme", "--report-dir", str(tmp_path / "r")
    )
    assert code == 0
    plan = tmp_path / "r" / "plan.jsonl"
    assert json.loads(plan.read_text().splitlines()[0])["plan"]["org"] == "acme"
    code, out, _ = cli(tmp_path, "apply", "--plan", str(plan))
    assert code == 0 and "add 1" in out
    code, _, err = cli(tmp_path, "apply", "--plan", str(plan))
    assert code == 4 and "changed since the plan" in err
    code, out, _ = cli(tmp_path, "jobs", "list")
    assert code == 0 and "plan.jsonl" in out


def test_busy_org_exit_4(tmp_path: Path) -> None:
    from csvimport.store.db import connect
    from csvimport.store.jobs import acquire_org_lock, create_job

    assert cli(tmp_path, "org", "load", str(ORG))[0] == 0
    db = connect(f"sqlite:///{tmp_path / 'cli.db'}")
    job = create_job(db, org="acme", dry_run=False)
    acquire_org_lock(db, "acme", job, worker="elsewhere:1")
    code, _, err = cli(tmp_path, "apply", users(tmp_path, GOOD), "--org", "acme")
    assert code == 4 and job in err


def test_failed_apply_exit_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csvimport.apply as apply_mod

    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(apply_mod, "apply_plan", broken)
    assert cli(tmp_path, "org", "load", str(ORG))[0] == 0
    code, out, _ = cli(
        tmp_path, "apply", users(tmp_path, GOOD), "--org", "acme", "--format", "json"
    )
    assert code == 5 and json.loads(out)["status"] == "FAILED"


def test_orders_assign_twice_exit_1(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("id,license,quantity\nORD-7,miteam_meetings,50\n", encoding="utf-8")
    assert cli(tmp_path, "org", "load", str(ORG))[0] == 0
    assert cli(tmp_path, "orders", "load", str(orders))[0] == 0
    assert cli(tmp_path, "orders", "assign", "ORD-7", "--org", "acme")[0] == 0
    code, _, err = cli(tmp_path, "orders", "assign", "ORD-7", "--org", "acme")
    assert code == 1 and "ORD-7" in err
    code, out, _ = cli(tmp_path, "orders", "list")
    assert "assigned to acme" in out
    code, out, _ = cli(tmp_path, "org", "show", "acme")
    assert "miteam_meetings" in out and "remaining" in out


def test_bad_org_file_names_key_and_value_and_loads_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        ORG.read_text().replace(
            "package: webex_calling\n  directory", "package: webex_sweet\n  directory"
        )
    )
    code, _, err = cli(tmp_path, "org", "load", str(bad))
    assert code == 2 and "webex_sweet" in err and "org.package" in err
    assert cli(tmp_path, "org", "show", "acme")[0] == 2


def test_export_and_template(tmp_path: Path) -> None:
    import openpyxl

    assert cli(tmp_path, "org", "load", str(ORG))[0] == 0
    assert cli(tmp_path, "org", "export", "acme", "-o", str(tmp_path / "e.xlsx"))[0] == 0
    code, out, _ = cli(
        tmp_path, "validate", str(tmp_path / "e.xlsx"), "--org", "acme", "--mode", "add-remove"
    )
    assert code == 0 and "no changes would be made" in out
    assert cli(tmp_path, "template", "--org", "acme", "-o", str(tmp_path / "t.xlsx"))[0] == 0
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx").active
    assert ws is not None
    lists = [dv.formula1 for dv in ws.data_validations.dataValidation]
    assert '"TRUE,FALSE"' in lists and any("Berlin" in f and "HQ" in f for f in lists)


def test_real_process_prints_progress_free_json(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "csvimport"
    proc = subprocess.run(
        [str(exe), "validate", users(tmp_path, GOOD), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["file"] == "users.csv"
    assert not (
        tmp_path / "csvimport.db"
    ).exists()  # a validation without --org touches no database


def test_real_process_ends_at_once_with_its_output_code_and_changes_kept(tmp_path: Path) -> None:
    """The console script leaves a finished job with ``os._exit``: its printed result (a
    pipe, fully buffered), its exit code and its committed changes must all survive that."""
    exe = str(Path(sys.executable).parent / "csvimport")
    db = ["--db", f"sqlite:///{tmp_path / 'real.db'}"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *db, *args], capture_output=True, text=True, check=False, cwd=tmp_path
        )

    assert run("org", "load", str(ORG)).returncode == 0
    many = "".join(
        f"u{i}@acme.example,{5000 + i},,HQ,TRUE,TRUE,acme.webex.com,TRUE\n" for i in range(300)
    )
    applied = run("apply", users(tmp_path, BAD, many), "--org", "acme", "--report-dir", "r")
    assert applied.returncode == 1  # SPEC 7: applied, with rejected rows
    # The whole text report reached the pipe, up to its last line.
    assert applied.stdout.endswith("\n") and "license_unavailable 298" in applied.stdout
    assert "more (see issues.csv" in applied.stdout.splitlines()[-1]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["operations"]["add_user"] == 2
    again = run("validate", users(tmp_path, many), "--org", "acme", "--format", "json")
    assert again.returncode == 1  # the 298 rows still lack seats
    assert json.loads(again.stdout)["rows"]["unchanged"] == 2  # the 2 added users persisted
