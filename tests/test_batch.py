"""The drop-folder worker (SPEC 10), driven as real ``csvimport watch`` processes.

Every scenario runs the command line in a subprocess on a real folder, with ``--db`` on a SQLite
file or on the PostgreSQL test database in a schema of its own, and checks the outcome where an
operator would: the folders, ``summary.json``, the job records and the audit trail. Crashes are
real SIGKILLs, placed deterministically by the worker's test hooks
(``CSVIMPORT_TEST_PAUSE_BEFORE_COMMIT``, ``CSVIMPORT_TEST_CRASH_AT``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from csvimport import batch
from csvimport.cli import main
from csvimport.model import Options, Result, Status
from csvimport.store.db import connect, transaction
from csvimport.store.models import AuditEvent, BatchFile, Job, Org
from csvimport.store.orgfile import load_org_file

CLI = str(Path(sys.executable).with_name("csvimport"))
HEADER = (
    "User ID/Email (Required),First Name,Last Name,Jabber Calling,"
    "Jabber with Webex Teams,Preferred Webex Site,Webex Meetings\n"
)
PG = pytest.param("postgresql", marks=pytest.mark.postgres)
STATE = ("orgs", "users", "user_licenses", "numbers", "pools", "audit_events")


def org_yaml(org: str) -> str:
    return f"""\
org: {{id: {org}, name: {org} GmbH, kind: customer, package: webex_suite,
       verified_domains: [{org}.example]}}
locations: [{{name: HQ}}]
sites: [{org}.webex.com]
pools: [{{license: webex_meetings}}, {{license: webex_suite}}]
users:
  - {{email: anna@{org}.example, first_name: Anna, last_name: Berg, role: full_admin,
     package: webex_suite, location: HQ, preferred_site: {org}.webex.com,
     jabber_calling: true, jabber_teams: true}}
  - {{email: bob@{org}.example, first_name: Bob, last_name: Bauer, package: webex_meetings,
     preferred_site: {org}.webex.com, jabber_calling: false, jabber_teams: true}}
"""


def users_csv(org: str, names: list[str]) -> str:
    rows = [f"{n}@{org}.example,{n.title()},Test,FALSE,TRUE,{org}.webex.com,TRUE\n" for n in names]
    return HEADER + "".join(rows)


def make_orgs(url: str, tmp_path: Path, *orgs: str) -> Engine:
    engine = connect(url)
    for org in orgs:
        path = tmp_path / f"{org}.yaml"
        path.write_text(org_yaml(org), encoding="utf-8")
        load_org_file(engine, path)
    return engine


def drop(root: Path, org: str, name: str, text: str | bytes, folder: str = "inbox") -> Path:
    """Write a file elsewhere and rename it in, as a well-behaved writer does."""
    inbox = root / org / folder
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = root / org / f".{len(os.listdir(inbox))}.writing"
    tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    target = inbox / name
    os.rename(tmp, target)
    return target


def watch(
    url: str, root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [CLI, "--db", url, "watch", str(root), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def start(
    url: str, root: Path, log: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    cmd = [CLI, "--db", url, "watch", str(root), *args]
    with log.open("ab") as err:
        return subprocess.Popen(
            cmd, stderr=err, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})}
        )


def events(text: str) -> list[dict[str, Any]]:
    """Every stderr line is one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def logged(log: Path, name: str) -> list[dict[str, Any]]:
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    complete = text[: text.rfind("\n") + 1]
    return [e for e in events(complete) if e["event"] == name]


def summaries(root: Path, org: str) -> dict[str, dict[str, Any]]:
    """summary.json of every job of ``org``, by file name."""
    out = {}
    for path in (root / org / "reports").glob("*/summary.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["file"]] = data
    return out


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.is_dir() else []


def adds_per_email(engine: Engine) -> Counter[str]:
    with transaction(engine, write=False) as conn:
        rows = conn.execute(select(AuditEvent.email).where(AuditEvent.op == "add_user"))
        return Counter(r[0] for r in rows)


def version(engine: Engine, org: str) -> int:
    with transaction(engine, write=False) as conn:
        return int(conn.execute(select(Org.state_version).where(Org.id == org)).scalar_one())


def job_rows(engine: Engine) -> list[Any]:
    with transaction(engine, write=False) as conn:
        return list(conn.execute(select(Job)))


def state_dump(engine: Engine) -> dict[str, list[Any]]:
    from conftest import dump_tables

    return {k: v for k, v in dump_tables(engine).items() if k in STATE}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


# -- folders, outcomes, reports ---------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite", PG], indirect=True)
def test_inbox_validate_and_outcomes(db_url: str, root: Path, tmp_path: Path) -> None:
    engine = make_orgs(db_url, tmp_path, "acme")
    drop(root, "acme", "good.csv", users_csv("acme", ["ann", "ben"]))
    drop(root, "acme", "partly.csv", users_csv("acme", ["cid"]) + "not-an-email,X,Y,,,,TRUE\n")
    broken = b"Name;Phone\r\nX;1\r\n"
    drop(root, "acme", "broken.csv", broken)
    drop(root, "acme", "check.csv", users_csv("acme", ["val"]), folder="validate")
    ignored = ["~$x.xlsx", ".x.part", "x.tmp", ".hidden.csv"]
    for name in ignored:
        drop(root, "acme", name, users_csv("acme", ["ign"]))
    drop(root, "ghost", "a.csv", users_csv("ghost", ["gus"]))

    run = watch(db_url, root, "--once", "--settle", "0")

    assert run.returncode == 0, run.stderr
    acme = root / "acme"
    assert listing(acme / "done") == ["check.csv", "good.csv", "partly.csv"]
    assert listing(acme / "failed") == ["broken.csv"]
    assert (acme / "failed" / "broken.csv").read_bytes() == broken
    assert listing(acme / "inbox") == sorted(ignored)
    assert listing(acme / "validate") == []
    found = summaries(root, "acme")
    assert {k: v["status"] for k, v in found.items()} == {
        "good.csv": "COMPLETED",
        "partly.csv": "COMPLETED_WITH_ERRORS",
        "broken.csv": "REJECTED",
        "check.csv": "COMPLETED",
    }
    assert found["check.csv"]["dry_run"] is True
    assert found["check.csv"]["operations"]["add_user"] == 1
    assert found["broken.csv"]["issues"] == {"missing_column": 1}
    assert "reason" in found["broken.csv"]
    ghost = summaries(root, "ghost")["a.csv"]
    assert ghost["status"] == "FAILED" and "ghost" in ghost["reason"]
    assert listing(root / "ghost" / "failed") == ["a.csv"]
    assert set(adds_per_email(engine)) == {
        "ann@acme.example",
        "ben@acme.example",
        "cid@acme.example",
    }
    assert version(engine, "acme") == 3

    logs = events(run.stderr)
    started = [e for e in logs if e["event"] == "job_started"]
    finished = [e for e in logs if e["event"] == "job_finished"]
    assert len(started) == len(finished) == 5
    assert {e["file"] for e in started} == {
        "good.csv",
        "partly.csv",
        "broken.csv",
        "check.csv",
        "a.csv",
    }
    assert all({"job", "org", "file", "folder"} <= e.keys() for e in started)
    for job_id in (e["job"] for e in finished):
        assert (root / finished[0]["org"]).exists()
        assert any(
            (root / o / "reports" / job_id / "summary.json").exists() for o in ("acme", "ghost")
        )

    listed = CliRunner().invoke(main, ["--db", db_url, "jobs", "list"])
    assert listed.exit_code == 0
    assert f"{acme / 'inbox'}/good.csv" in listed.stdout
    assert f"{acme / 'validate'}/check.csv" in listed.stdout
    assert "batch" in listed.stdout


def test_validate_folder_never_changes_state(root: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(db_url, tmp_path, "acme")
    (root / "acme").mkdir()
    (root / "acme" / "csvimport.yaml").write_text("mode: add-remove\n", encoding="utf-8")
    before = state_dump(engine)
    drop(root, "acme", "a.csv", users_csv("acme", ["new"]), folder="validate")
    drop(root, "acme", "b.csv", HEADER + "bob@acme.example,,,,,,FALSE\n", folder="validate")

    run = watch(db_url, root, "--once", "--settle", "0")

    assert run.returncode == 0, run.stderr
    assert listing(root / "acme" / "done") == ["a.csv", "b.csv"]
    plan = summaries(root, "acme")["b.csv"]
    assert plan["operations"]["delete_user"] == 1 and plan["mode"] == "add-remove"
    assert state_dump(engine) == before


def test_folder_options_and_bad_config(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    make_orgs(url, tmp_path, "acme", "beta")
    (root / "acme").mkdir()
    (root / "acme" / "csvimport.yaml").write_text("mode: add-remove\nmax_deletes: 0\n")
    drop(root, "acme", "delete-bob.csv", HEADER + "bob@acme.example,,,,,,FALSE\n")
    (root / "beta").mkdir()
    (root / "beta" / "csvimport.yaml").write_text("mode: sideways\n")
    kept = users_csv("beta", ["bea"]).encode()
    drop(root, "beta", "b.csv", kept)

    run = watch(url, root, "--once", "--settle", "0")

    assert run.returncode == 0, run.stderr
    refused = summaries(root, "acme")["delete-bob.csv"]
    assert refused["status"] == "REJECTED" and "too_many_deletes" in refused["issues"]
    assert refused["mode"] == "add-remove"
    failed = summaries(root, "beta")["b.csv"]
    assert failed["status"] == "FAILED" and "csvimport.yaml" in failed["reason"]
    assert (root / "beta" / "failed" / "b.csv").read_bytes() == kept


def test_duplicate_content_is_not_applied_again(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(url, tmp_path, "acme")
    content = users_csv("acme", ["dan", "eva"])
    yesterday = users_csv("acme", ["old"])
    drop(root, "acme", "daily.csv", yesterday)
    (root / "acme" / "done").mkdir()
    os.rename(root / "acme" / "inbox" / "daily.csv", root / "acme" / "done" / "daily.csv")
    drop(root, "acme", "daily.csv", content)
    drop(root, "acme", "copy.csv", content)
    drop(root, "acme", "daily.csv", content, folder="validate")  # a dry run is never a duplicate

    run = watch(url, root, "--once", "--settle", "0")

    assert run.returncode == 0, run.stderr
    found = [json.loads(p.read_text()) for p in (root / "acme" / "reports").glob("*/*.json")]
    statuses = Counter((s["folder"], s["status"]) for s in found)
    assert statuses == {
        ("inbox", "COMPLETED"): 1,
        ("inbox", "DUPLICATE"): 1,
        ("validate", "COMPLETED"): 1,
    }
    (dupe,) = [s for s in found if s["status"] == "DUPLICATE"]
    assert dupe["duplicate_of"] in {s["job_id"] for s in found if s["status"] == "COMPLETED"}
    assert "already applied" in dupe["notes"][0]
    done = listing(root / "acme" / "done")
    assert len(done) == 4 and "copy.csv" in done
    assert (root / "acme" / "done" / "daily.csv").read_text() == yesterday  # never overwritten
    (job,) = [j for j in job_rows(engine) if j.status == "DUPLICATE"]
    assert "already applied" in job.error
    assert adds_per_email(engine) == {"dan@acme.example": 1, "eva@acme.example": 1}


# -- pickup: complete files only -----------------------------------------------------------------


def test_file_written_slowly_is_taken_only_when_complete(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(url, tmp_path, "acme")
    (root / "acme" / "inbox").mkdir(parents=True)
    log = tmp_path / "watch.log"
    proc = start(url, root, log, "--interval", "0.1", "--settle", "2")
    try:
        wait_for(lambda: logged(log, "watch_started"), what="the worker to start")
        path = root / "acme" / "inbox" / "slow.csv"
        names = [f"p{i}" for i in range(8)]
        with path.open("w", encoding="utf-8") as fh:
            fh.write(HEADER)
            for name in names:
                fh.write(users_csv("acme", [name])[len(HEADER) :])
                fh.flush()
                time.sleep(0.2)
                assert path.exists(), "taken while it was still being written"
        wait_for(lambda: listing(root / "acme" / "done"), what="the file to be done")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert summaries(root, "acme")["slow.csv"]["rows"]["total"] == len(names)
    assert len(adds_per_email(engine)) == len(names)
    assert logged(log, "watch_stopped")


def test_once_leaves_a_young_file_for_the_next_run(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    make_orgs(url, tmp_path, "acme")
    drop(root, "acme", "young.csv", users_csv("acme", ["yan"]))

    first = watch(url, root, "--once", "--settle", "30")
    assert first.returncode == 0, first.stderr
    assert listing(root / "acme" / "inbox") == ["young.csv"]
    assert not [e for e in events(first.stderr) if e["event"] == "job_started"]

    second = watch(url, root, "--once", "--settle", "0")
    assert second.returncode == 0
    assert listing(root / "acme" / "done") == ["young.csv"]


# -- path safety -------------------------------------------------------------------------------


HIDDEN = ["..csv", "...", ".. "]  # dot names are hidden files: ignored, never read
HOSTILE = [
    "a..b.csv",
    "-rf.csv",
    "a\\..\\..\\b.csv",
    "line\nbreak.csv",
    "Mu\u0308ller.csv",  # NFD
    "\u202egpj.csv",  # right-to-left override
    "\u00fc" * 120 + ".csv",  # 244 bytes
    "x" * 251 + ".csv",  # 255 bytes: the longest name there is
    "\U0001f4a9 emoji.csv",
    "tab\tname.csv",
]


def test_hostile_names_stay_inside_dir(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(url, tmp_path, "acme", "beta")
    outside = tmp_path / "outside"
    (outside / "evil" / "inbox").mkdir(parents=True)
    secret = outside / "secret.csv"
    secret.write_text(users_csv("acme", ["secret"]))
    (outside / "evil" / "inbox" / "x.csv").write_text(users_csv("acme", ["evil"]))
    before = sorted(str(p) for p in outside.rglob("*"))

    inbox = root / "acme" / "inbox"
    for i, name in enumerate(HOSTILE + HIDDEN):
        drop(root, "acme", name, users_csv("acme", [f"h{i}"]))
    bad_bytes = os.fsdecode(b"\xff\xfe-latin1.csv")
    drop(root, "acme", bad_bytes, users_csv("acme", ["raw"]))
    os.symlink(secret, inbox / "link.csv")
    os.symlink(outside, inbox / "dirlink")
    os.mkfifo(inbox / "pipe.csv")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "inner.csv").write_text(users_csv("acme", ["inner"]))
    os.symlink(outside / "evil", root / "evil")  # a symlinked org folder is not followed
    (root / "beta").mkdir()
    os.symlink(outside, root / "beta" / "done")  # nor a symlinked done/ of an org
    drop(root, "beta", "b.csv", users_csv("beta", ["bee"]))

    run = watch(url, root, "--once", "--settle", "0", timeout=60)

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    logs = events(run.stderr)  # every line is JSON
    assert sorted(str(p) for p in outside.rglob("*")) == before
    assert secret.read_text() == users_csv("acme", ["secret"])
    done, failed = listing(root / "acme" / "done"), listing(root / "acme" / "failed")
    assert len(done) == len(HOSTILE) + 1
    assert sorted(failed) == ["dirlink", "link.csv", "pipe.csv"]
    assert (root / "acme" / "failed" / "link.csv").is_symlink()
    assert listing(inbox) == sorted([*HIDDEN, "sub"])
    assert listing(root / "acme" / "processing") == []
    link = summaries(root, "acme")["link.csv"]
    assert link["status"] == "REJECTED" and link["sha256"] is None
    assert "symbolic link" in link["reason"]
    emails = set(adds_per_email(engine))
    assert "secret@acme.example" not in emails and "evil@acme.example" not in emails
    assert len(emails) == len(HOSTILE) + 1
    assert listing(root / "beta" / "inbox") == ["b.csv"]  # refused, left where it was
    ignored = {e["path"] for e in logs if e["event"] == "folder_ignored"}
    assert str(root / "evil") in ignored and any("beta" in p for p in ignored)


def test_bad_dir_and_unreachable_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    missing = watch(url, tmp_path / "nope", "--once")
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "not a directory" in missing.stderr

    for bad in ("postgresql+psycopg://nobody@127.0.0.1:1/none", f"sqlite:///{tmp_path}/no/x.db"):
        down = watch(bad, tmp_path, "--once")
        assert down.returncode == 5, down.stderr
        assert down.stderr.count("\n") == 1 and "cannot use the database" in down.stderr


# -- crashes and many workers ---------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite", PG], indirect=True)
def test_sigkill_mid_apply_then_restart_applies_once(
    db_url: str, root: Path, tmp_path: Path
) -> None:
    engine = make_orgs(db_url, tmp_path, "acme")
    names = ["kim", "lou", "max"]
    drop(root, "acme", "k.csv", users_csv("acme", names))
    log = tmp_path / "watch.log"
    pause = {batch.PAUSE_ENV: "120"}
    proc = start(db_url, root, log, "--settle", "0", "--interval", "0.1", env=pause)
    try:
        wait_for(lambda: logged(log, "test_pause_before_commit"), what="the apply to pause")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
    job_id = logged(log, "job_started")[0]["job"]
    assert listing(root / "acme" / "processing" / job_id) == ["k.csv"]
    assert [(j.id, j.status) for j in job_rows(engine)] == [(job_id, "RUNNING")]
    assert version(engine, "acme") == 1 and not adds_per_email(engine)

    run = watch(db_url, root, "--once", "--settle", "0")

    assert run.returncode == 0, run.stderr
    assert [e["action"] for e in events(run.stderr) if e["event"] == "job_recovered"] == ["rerun"]
    assert listing(root / "acme" / "done") == ["k.csv"]
    assert listing(root / "acme" / "processing") == []
    assert [(j.id, j.status) for j in job_rows(engine)] == [(job_id, "COMPLETED")]
    assert adds_per_email(engine) == {f"{n}@acme.example": 1 for n in names}
    assert version(engine, "acme") == 2


CRASH_POINTS = ["claimed", "moved", "applied", "reported", "moved_out"]


def test_crash_at_every_step_is_recovered_exactly_once(tmp_path: Path) -> None:
    """One scenario per step of the protocol, run side by side: crash there, then restart."""
    cases = {}
    for point in CRASH_POINTS:
        base = tmp_path / point
        base.mkdir()
        url = f"sqlite:///{base / 'db.sqlite'}"
        cases[point] = (base, url, make_orgs(url, base, "acme"))
        drop(base / "drop", "acme", "c.csv", users_csv("acme", ["ola", "pia"]))

    def run_all(crash: bool) -> dict[str, subprocess.Popen[bytes]]:
        return {
            p: start(
                url,
                base / "drop",
                base / "log",
                "--once",
                "--settle",
                "0",
                env={batch.CRASH_ENV: p} if crash else {},
            )
            for p, (base, url, _) in cases.items()
        }

    crashed = run_all(crash=True)
    assert {p: proc.wait(timeout=60) for p, proc in crashed.items()} == dict.fromkeys(
        CRASH_POINTS, -signal.SIGKILL
    )
    again = run_all(crash=False)
    assert {p: proc.wait(timeout=60) for p, proc in again.items()} == dict.fromkeys(CRASH_POINTS, 0)
    actions = {
        p: [e["action"] for e in logged(base / "log", "job_recovered")]
        for p, (base, _, _) in cases.items()
    }
    assert actions == {
        "claimed": ["released"],
        "moved": ["rerun"],
        "applied": ["committed"],
        "reported": ["moved"],
        "moved_out": ["closed"],
    }
    for base, _, engine in cases.values():
        _assert_applied_once(base / "drop" / "acme", engine)


def _assert_applied_once(org_dir: Path, engine: Engine) -> None:
    assert listing(org_dir / "done") == ["c.csv"]
    assert listing(org_dir / "processing") == listing(org_dir / "inbox") == []
    assert [j.status for j in job_rows(engine)] == ["COMPLETED"]
    assert adds_per_email(engine) == {"ola@acme.example": 1, "pia@acme.example": 1}
    assert version(engine, "acme") == 2
    (summary,) = [json.loads(p.read_text()) for p in (org_dir / "reports").glob("*/*.json")]
    assert summary["status"] == "COMPLETED"
    with transaction(engine, write=False) as conn:
        open_claims = conn.execute(
            select(func.count()).where(BatchFile.active_key.is_not(None))
        ).scalar()
    assert open_claims == 0


def test_sigterm_finishes_the_job_in_flight(root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(url, tmp_path, "acme")
    drop(root, "acme", "t.csv", users_csv("acme", ["tom"]))
    log = tmp_path / "watch.log"
    proc = start(url, root, log, "--settle", "0", "--interval", "0.1", env={batch.PAUSE_ENV: "1.5"})
    try:
        wait_for(lambda: logged(log, "test_pause_before_commit"), what="the apply to pause")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert listing(root / "acme" / "done") == ["t.csv"]
    assert [j.status for j in job_rows(engine)] == ["COMPLETED"]
    assert logged(log, "stopping") and logged(log, "watch_stopped")


@pytest.mark.parametrize("db_url", [PG], indirect=True)
def test_three_workers_process_200_files_exactly_once(
    db_url: str, root: Path, tmp_path: Path
) -> None:
    orgs = [f"org{i}" for i in range(5)]
    engine = make_orgs(db_url, tmp_path, *orgs)
    expected = set()
    for org in orgs:
        for f in range(40):
            names = [f"f{f}u{u}" for u in range(3)]
            drop(root, org, f"file{f:02}.csv", users_csv(org, names))
            expected |= {f"{n}@{org}.example" for n in names}
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    procs = [start(db_url, root, log, "--once", "--settle", "0") for log in logs]
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0, 0]

    jobs = job_rows(engine)
    assert len(jobs) == 200 and {j.status for j in jobs} == {"COMPLETED"}
    assert len({(j.org_id, j.file) for j in jobs}) == 200
    assert adds_per_email(engine) == dict.fromkeys(expected, 1)
    for org in orgs:
        assert len(listing(root / org / "done")) == 40
        assert listing(root / org / "inbox") == listing(root / org / "processing") == []
        assert version(engine, org) == 41
    workers = Counter(e["worker"] for log in logs for e in logged(log, "job_finished"))
    assert sum(workers.values()) == 200


# -- in-process: the customers hook and the small rules -----------------------------------------


def test_customers_folder_uses_the_hook_when_present(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Options] = []

    def hook(options: Options, *, db: Any, job_id: str, **_: Any) -> Result:
        seen.append(options)
        result = Result(
            job_id, options, Status.COMPLETED, file=options.file.name if options.file else ""
        )
        result.kind = "customers"
        return result

    monkeypatch.setattr(batch, "customers_runner", lambda: hook)
    drop(root, "_customers", "c.csv", "Company Name\nX\n")
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lines: list[dict[str, Any]] = []
    batch.Worker(engine, batch.Settings(root, once=True, settle=0), lines.append).run()

    assert [(o.org, o.dry_run, o.source) for o in seen] == [(None, False, "batch")]
    assert listing(root / "_customers" / "done") == ["c.csv"]
    (job,) = job_rows(engine)
    assert (job.kind, job.org_id, job.status) == ("customers", None, "COMPLETED")


def test_customers_folder_ignored_without_the_hook(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "customers_runner", lambda: None)
    drop(root, "_customers", "c.csv", "Company Name\nX\n")
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    batch.Worker(engine, batch.Settings(root, once=True, settle=0), lambda _: None).run()
    assert listing(root / "_customers" / "inbox") == ["c.csv"]
    assert job_rows(engine) == []


def test_unreadable_file_fails_without_stopping_the_worker(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(batch, "sha256_of", refuse)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_orgs(url, tmp_path, "acme")
    drop(root, "acme", "locked.csv", users_csv("acme", ["lee"]))
    batch.Worker(engine, batch.Settings(root, once=True, settle=0), lambda _: None).run()
    assert listing(root / "acme" / "failed") == ["locked.csv"]
    assert "Permission denied" in summaries(root, "acme")["locked.csv"]["reason"]


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("~$users.xlsx", True),
        (".users.csv.part", True),
        ("users.tmp", True),
        (".x", True),
        ("users.csv", False),
        ("users.csv.bak", False),
        ("tmp.csv", False),
    ],
)
def test_ignored_names(name: str, ignored: bool) -> None:
    assert batch.ignored_name(name) is ignored


def test_fit_name_keeps_suffix_and_byte_limit() -> None:
    long = "\u00e4" * 200 + ".xlsx"
    fitted = batch.fit_name(long)
    assert fitted.endswith(".xlsx") and len(fitted.encode()) <= 255
    assert batch.fit_name("short.csv") == "short.csv"
    assert batch.display_name(os.fsdecode(b"a\xffb.csv")) == "a\ufffdb.csv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: sideways", "mode"),
        ("max_deletes: -1", "max_deletes"),
        ("colour: red", "unknown"),
        ("[1, 2]", "mapping"),
        ("mode: [", "YAML"),
    ],
)
def test_bad_folder_config(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "csvimport.yaml").write_text(text)
    with pytest.raises(batch.FolderProblem, match=message):
        batch.load_config(tmp_path)


def test_folder_config_read(tmp_path: Path) -> None:
    assert batch.load_config(tmp_path) == batch.FolderConfig()
    (tmp_path / "csvimport.yaml").write_text("mode: add-remove\nmax_deletes: 5\nsheet: Users\n")
    assert batch.load_config(tmp_path) == batch.FolderConfig("add-remove", 5, "Users")
