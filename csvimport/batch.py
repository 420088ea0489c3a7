"""Drop folders (SPEC 10): discover files, claim them, run one job each, move them on.

An HR or provisioning system drops a file into ``DIR/<org>/inbox/`` (apply) or
``DIR/<org>/validate/`` (dry run); a ``watch`` worker takes it once it is complete, runs the same
engine as the CLI and leaves the file in ``done/`` or ``failed/`` with its reports in
``reports/<job id>/``. This module never reads a cell: it owns folders, claims and moves.

The protocol, so that several workers never process a file twice and a worker killed at any
moment loses nothing:

1. **Lock, claim.** The worker takes the org lock (one job per org), then claims the file in the
   database (``store.claims``: a unique key inserted with the job record, one transaction).
2. **Move in.** ``os.rename`` into ``processing/<job id>/`` (atomic, within the org folder).
3. **Run.** The engine runs (``source="batch"``: the worker owns the job record); an apply
   commits in one transaction that also writes the job's audit events.
4. **Conclude.** Reports are written to a hidden folder renamed to ``reports/<job id>/`` (all or
   nothing), then the job record is finished, the file is moved to ``done/`` or ``failed/``,
   and the claim is closed.

A claim still open whose worker is gone is taken over by another worker (compare-and-set) and
finished from what is on disk and in the database: no file in ``processing/<job id>/`` and no
reports: the move never happened, the claim is dropped and the file is claimed afresh; reports
present: only steps after them are redone; audit events of the job present: the apply committed,
so the file is concluded without applying it again; otherwise the transaction never committed
and the job is run again, once. The SHA-256 rule (content already applied to the org is a
``DUPLICATE``, not applied again) protects the same window from the other side.

Test hooks (never set them in production): ``CSVIMPORT_TEST_PAUSE_BEFORE_COMMIT=seconds`` sleeps
inside an apply transaction, after its writes and before its commit, logging
``test_pause_before_commit`` first, so a test can kill the worker mid-apply;
``CSVIMPORT_TEST_CRASH_AT=claimed|moved|applied|reported|moved_out`` kills the worker with
SIGKILL at that step of the protocol.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import random
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import Engine, event

from csvimport import engine as eng
from csvimport.model import (
    CUSTOMER_OPERATION_KINDS,
    OPERATION_KINDS,
    FileRejected,
    Issue,
    Mode,
    Options,
    Result,
    StaleOrBusy,
    Status,
    issues_frame,
)
from csvimport.read import sha256_of
from csvimport.store import claims, jobs
from csvimport.store.db import APPLYING

FOLDERS: dict[str, bool] = {"inbox": False, "validate": True}  # folder -> dry run
STATE_DIRS = ("processing", "done", "failed", "reports")
CUSTOMERS = "_customers"
CONFIG_NAME = "csvimport.yaml"
PAUSE_ENV = "CSVIMPORT_TEST_PAUSE_BEFORE_COMMIT"
CRASH_ENV = "CSVIMPORT_TEST_CRASH_AT"
NAME_MAX = 255  # bytes, the usual file-name limit
_IGNORED_PREFIXES = (".", "~$")
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
_FAILED_STATUSES = ("REJECTED", "FAILED")

Log = Callable[[dict[str, Any]], None]
Runner = Callable[..., Result]
Taken = Literal["taken", "skipped", "busy"]


class FolderProblem(Exception):
    """A folder the worker must not use: not a real directory, or a bad ``csvimport.yaml``."""


@dataclass(frozen=True)
class Settings:
    """How the worker runs (the ``watch`` command's options)."""

    root: Path
    once: bool = False
    interval: float = 5.0
    settle: float = 2.0
    stale_after: float = 120.0

    @property
    def heartbeat(self) -> float:
        """Seconds between heartbeats: well inside ``stale_after``."""
        return min(10.0, self.stale_after / 4)


@dataclass(frozen=True)
class FolderConfig:
    """``DIR/<org>/csvimport.yaml``: the options of that org's jobs, never from file names."""

    mode: Mode = "add-only"
    max_deletes: int | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class Entry:
    """A file seen in an inbox, as it was when seen."""

    org: str
    org_dir: Path
    folder: str
    name: str  # as on disk: may carry surrogate escapes of bytes that are not UTF-8
    signature: tuple[int, ...]
    changed: float  # the later of mtime and ctime


@dataclass
class Job:
    """One file's job as the worker carries it through the protocol."""

    job_id: str
    org: str
    org_dir: Path
    folder: str
    name: str  # the file's name inside processing/<job id>/
    display: str  # the name as reports, logs and the job record show it
    config: FolderConfig | None = None
    problem: str | None = None  # set when the folder's configuration is unusable
    extra: dict[str, Any] = field(default_factory=dict)  # additions to summary.json

    @property
    def dry_run(self) -> bool:
        return FOLDERS[self.folder]

    @property
    def customers(self) -> bool:
        return self.org == CUSTOMERS

    @property
    def path(self) -> Path:
        return self.org_dir / "processing" / self.job_id / self.name


# -- names and folders -----------------------------------------------------------------------


def display_name(name: str) -> str:
    """``name`` with bytes that are not UTF-8 shown as U+FFFD, safe for JSON and the database."""
    return os.fsencode(name).decode("utf-8", "replace")


def fit_name(name: str, limit: int = NAME_MAX) -> str:
    """``name`` shortened (its stem, keeping the suffix) to at most ``limit`` UTF-8 bytes."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    tail = f".{suffix}" if suffix else ""
    room = limit - len(tail.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + tail


def ignored_name(name: str) -> bool:
    """Temporary, lock and hidden files: never taken (SPEC 10)."""
    lowered = name.lower()
    return lowered.startswith(_IGNORED_PREFIXES) or lowered.endswith(_IGNORED_SUFFIXES)


def real_dir(path: Path) -> bool:
    """``path`` is a directory itself, not a symlink to one (nothing leads outside DIR)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def state_dir(org_dir: Path, name: str) -> Path:
    """``org_dir/name`` (processing, done, …), created if missing; refused if not a real dir."""
    path = org_dir / name
    with contextlib.suppress(FileExistsError):
        path.mkdir()
    if not real_dir(path):
        raise FolderProblem(f"{path} is not a directory (a symlink?): refusing to use it")
    return path


def load_config(org_dir: Path) -> FolderConfig:
    """The folder's ``csvimport.yaml`` (keys ``mode``, ``max_deletes``, ``sheet``), if any."""
    path = org_dir / CONFIG_NAME
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return FolderConfig()
    if not stat.S_ISREG(info.st_mode) or info.st_size > 65_536:
        raise FolderProblem(f"{path} must be a regular file of at most 64 KiB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FolderProblem(f"{path} is not valid YAML: {exc}") from exc
    return _config_from(path, data)


def _config_from(path: Path, data: Any) -> FolderConfig:
    if not isinstance(data, dict):
        raise FolderProblem(f"{path}: expected a mapping of mode, max_deletes, sheet")
    unknown = sorted(set(map(str, data)) - {"mode", "max_deletes", "sheet"})
    if unknown:
        raise FolderProblem(f"{path}: unknown keys {', '.join(unknown)} (mode, max_deletes, sheet)")
    mode = data.get("mode", "add-only")
    if mode not in ("add-only", "add-remove"):
        raise FolderProblem(f"{path}: mode {mode!r} is not add-only or add-remove")
    deletes = data.get("max_deletes")
    if deletes is not None and (type(deletes) is not int or deletes < 0):
        raise FolderProblem(f"{path}: max_deletes {deletes!r} is not a whole number >= 0")
    sheet = data.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        raise FolderProblem(f"{path}: sheet {sheet!r} is not a worksheet name")
    return FolderConfig(mode=mode, max_deletes=deletes, sheet=sheet)


def customers_runner() -> Runner | None:
    """``csvimport.customers.batch_job`` when the customers feature provides it."""
    try:
        module = importlib.import_module("csvimport.customers")
    except ImportError:
        return None
    hook = getattr(module, "batch_job", None)
    return hook if callable(hook) else None


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode)


def _lsignature(path: Path) -> tuple[int, ...] | None:
    try:
        return _signature(os.lstat(path))
    except OSError:
        return None


def _interleave(groups: list[list[Entry]]) -> list[Entry]:
    """One file of each org in turn, so that workers spread over orgs."""
    out: list[Entry] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


# -- results that the engine did not make ------------------------------------------------------


def _bare_result(job: Job, status: Status, note: str) -> Result:
    config = job.config or FolderConfig()
    org = None if job.customers else job.org
    options = Options(org=org, mode=config.mode, dry_run=job.dry_run, source="batch")
    result = Result(job.job_id, options, status, file=job.display)
    result.kind = "customers" if job.customers else "users"
    kinds = CUSTOMER_OPERATION_KINDS if job.customers else OPERATION_KINDS
    result.operations = dict.fromkeys(kinds, 0)
    result.notes.append(note)
    return result


def _rejected(job: Job, issues: list[Issue]) -> Result:
    result = _bare_result(job, Status.REJECTED, "; ".join(i.message for i in issues))
    result.issues = issues_frame(issues)
    result.issue_counts = {i.code: 1 for i in issues}
    return result


def _refused(job: Job, kind: str) -> Result:
    issue = Issue(
        code="unreadable_file",
        message=f"{job.display} is {kind}, not a regular file: it was not opened. "
        "Drop the file itself into the folder.",
    )
    return _rejected(job, [issue])


def _file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a special file"


# -- the worker -------------------------------------------------------------------------------


class Worker:
    """One ``watch`` process: passes over the drop folders until told to stop."""

    def __init__(self, db: Engine, settings: Settings, log: Log) -> None:
        self.db = db
        self.settings = settings
        self.root = settings.root
        self.worker = claims.worker_id()
        self._log_sink = log
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._current: Job | None = None
        self._customers = customers_runner()
        self.jobs_run = 0
        _install_test_pause(self)

    # - running -

    def stop(self) -> None:
        """Finish the job in flight, then return from ``run``."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Pass over the folders; with ``once``, until a pass finds nothing more to take."""
        s = self.settings
        self.log(
            "watch_started", dir=str(self.root), once=s.once, settle=s.settle, interval=s.interval
        )
        while not self.stopping:
            taken = self._safe_pass()
            if s.once and taken == 0:
                break
            if taken == 0:
                self._stop.wait(s.interval)
        self.log("watch_stopped", jobs=self.jobs_run)

    def _safe_pass(self) -> int:
        try:
            return self.run_pass()
        except Exception as exc:
            if self.settings.once:
                raise
            self.log("error", message=f"{type(exc).__name__}: {exc}")
            return 0

    def run_pass(self) -> int:
        """Recover orphaned jobs, then take every eligible file once; return how many ran."""
        taken = self.recover()
        busy: set[str] = set()
        for entry in self.scan():
            if self.stopping:
                break
            if entry.org in busy:
                continue
            outcome = self._take(entry)
            if outcome == "busy":
                busy.add(entry.org)
            taken += outcome == "taken"
        return taken

    def log(self, event_name: str, job: Job | None = None, **fields: Any) -> None:
        line: dict[str, Any] = {"ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")}
        line["event"] = event_name
        if job is not None:
            line |= {"job": job.job_id, "org": job.org, "folder": job.folder, "file": job.display}
        line |= fields
        line["worker"] = self.worker
        self._log_sink(line)

    def _warn_once(self, key: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log("folder_ignored", **fields)

    # - discovery -

    def scan(self) -> list[Entry]:
        """Eligible files, oldest first within an org, orgs in turn (in random order)."""
        groups = [
            sorted(self._entries(org_dir), key=lambda e: (e.changed, e.name))
            for org_dir in self._org_dirs()
        ]
        random.shuffle(groups)
        return _interleave([g for g in groups if g])

    def _org_dirs(self) -> Iterator[Path]:
        for de in sorted(os.scandir(self.root), key=lambda d: d.name):
            path = Path(de.path)
            if de.name.startswith("."):
                continue
            if display_name(de.name) != de.name:
                self._warn_once(de.path, path=display_name(de.path), reason="name is not UTF-8")
            elif not de.is_dir(follow_symlinks=False):
                if de.is_symlink():
                    self._warn_once(de.path, path=de.path, reason="symbolic link: not followed")
            elif de.name != CUSTOMERS or self._customers is not None:
                yield path

    def _entries(self, org_dir: Path) -> Iterator[Entry]:
        now = time.time()
        for folder in FOLDERS:
            inbox = org_dir / folder
            if not real_dir(inbox):
                if os.path.lexists(inbox):
                    self._warn_once(str(inbox), path=str(inbox), reason="not a real directory")
                continue
            for de in os.scandir(inbox):
                entry = self._entry(org_dir, folder, de, now)
                if entry is not None:
                    yield entry

    def _entry(self, org_dir: Path, folder: str, de: os.DirEntry[str], now: float) -> Entry | None:
        if ignored_name(de.name):
            return None
        try:
            info = de.stat(follow_symlinks=False)
        except OSError:
            return None
        if stat.S_ISDIR(info.st_mode):
            return None
        changed = max(info.st_mtime, info.st_ctime)
        if stat.S_ISREG(info.st_mode) and now - changed < self.settings.settle:
            return None  # still being written, or just renamed in: next pass
        return Entry(org_dir.name, org_dir, folder, de.name, _signature(info), changed)

    # - taking a file -

    def _take(self, entry: Entry) -> Taken:
        job_id = eng.new_job_id()
        try:
            jobs.acquire_org_lock(self.db, entry.org, job_id)
        except StaleOrBusy:
            return "busy"
        try:
            return self._claim_and_run(entry, job_id)
        except FolderProblem as exc:
            self._warn_once(str(exc), path=str(entry.org_dir), reason=str(exc))
            return "busy"
        finally:
            jobs.release_org_lock(self.db, entry.org, job_id)

    def _claim_and_run(self, entry: Entry, job_id: str) -> Taken:
        for name in STATE_DIRS:
            state_dir(entry.org_dir, name)
        source = entry.org_dir / entry.folder / entry.name
        if _lsignature(source) != entry.signature:
            return "skipped"  # changed or gone since the scan
        job = self._new_job(entry, job_id)
        if not self._claim(job, entry):
            return "skipped"
        self._crash_point("claimed")
        if not self._move_in(job, source):
            claims.release(self.db, job_id)
            return "skipped"
        self._crash_point("moved")
        self._run_job(job)
        return "taken"

    def _new_job(self, entry: Entry, job_id: str) -> Job:
        display = display_name(entry.name)
        job = Job(job_id, entry.org, entry.org_dir, entry.folder, fit_name(display), display)
        _load_config_into(job)
        return job

    def _claim(self, job: Job, entry: Entry) -> bool:
        config = job.config or FolderConfig()
        record = {
            "org_id": None if job.customers else job.org,
            "kind": "customers" if job.customers else "users",
            "folder": str(job.org_dir / job.folder),
            "file": job.display,
            "mode": config.mode,
            "dry_run": job.dry_run,
            "options": {"max_deletes": config.max_deletes, "sheet": config.sheet},
        }
        key = claims.file_key(job.org, job.folder, entry.name)
        return claims.claim(
            self.db,
            job_id=job.job_id,
            key=key,
            org=job.org,
            folder=job.folder,
            name=job.display,
            worker=self.worker,
            job=record,
        )

    def _move_in(self, job: Job, source: Path) -> bool:
        """``inbox/name`` → ``processing/<job id>/name``, atomically; False if it is gone."""
        job.path.parent.mkdir(exist_ok=True)
        try:
            os.rename(source, job.path)
        except FileNotFoundError:
            job.path.parent.rmdir()
            return False
        return True

    # - running a job -

    def _run_job(self, job: Job) -> None:
        self.log("job_started", job, dry_run=job.dry_run)
        info, sha, unreadable = _fingerprint(job.path)
        claims.restart(self.db, job.job_id, self.worker, sha)
        self._current = job
        try:
            with self._heartbeat(job):
                if unreadable is not None:
                    result = _bare_result(job, Status.FAILED, unreadable)
                else:
                    result = self._execute(job, info, sha)
                self._crash_point("applied")
                self._conclude(job, result)
        finally:
            self._current = None

    @contextlib.contextmanager
    def _heartbeat(self, job: Job) -> Iterator[None]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.heartbeat):
                with contextlib.suppress(Exception):
                    claims.beat(self.db, job.job_id, self.worker)
                    jobs.heartbeat(self.db, job.org, job.job_id)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _execute(self, job: Job, info: os.stat_result | None, sha: str | None) -> Result:
        """The job's outcome; never raises for a problem of the file, folder or org."""
        if job.problem is not None:
            return _bare_result(job, Status.FAILED, job.problem)
        if sha is None:
            return _refused(job, _file_kind(info.st_mode if info else 0))
        if not job.dry_run:
            duplicate = claims.applied_before(
                self.db,
                org=None if job.customers else job.org,
                kind="customers" if job.customers else "users",
                sha256=sha,
                job_id=job.job_id,
            )
            if duplicate is not None:
                return self._duplicate(job, sha, duplicate)
        return self._engine_result(job)

    def _duplicate(self, job: Job, sha: str, original: str) -> Result:
        note = (
            f"the same content (SHA-256 {sha}) was already applied to {job.org} by job "
            f"{original}: not applied again"
        )
        result = _bare_result(job, Status.COMPLETED, note)
        result.sha256 = sha
        job.extra |= {"status": "DUPLICATE", "duplicate_of": original}
        return result

    def _engine_result(self, job: Job) -> Result:
        config = job.config or FolderConfig()
        options = Options(
            file=job.path,
            org=None if job.customers else job.org,
            mode=config.mode,
            dry_run=job.dry_run,
            sheet=config.sheet,
            max_deletes=config.max_deletes,
            source="batch",
        )
        runner = self._customers if job.customers and self._customers else eng.run
        try:
            result = runner(options, db=self.db, job_id=job.job_id)
        except FileRejected as exc:
            return _rejected(job, exc.issues)
        except Exception as exc:  # unknown org, stale, database down: the job failed
            applied = "" if job.dry_run else " and nothing was applied"
            return _bare_result(job, Status.FAILED, f"the job failed{applied}: {exc}")
        result.file = job.display
        return result

    # - concluding -

    def _conclude(self, job: Job, result: Result) -> None:
        """Reports, then the job record, then the move out, then the claim (see the notes)."""
        status = str(job.extra.get("status", result.status.value))
        self._write_reports(job, result, status)
        self._crash_point("reported")
        self._finish_record(job, result, status)
        dest = self._move_out(job, status)
        self._crash_point("moved_out")
        claims.close(self.db, job.job_id, dest.split("/")[0], dest)
        self.jobs_run += 1
        self.log(
            "job_finished",
            job,
            status=status,
            moved_to=dest,
            rows=result.rows.total,
            operations=sum(result.operations.values()),
        )

    def _write_reports(self, job: Job, result: Result, status: str) -> None:
        reports = state_dir(job.org_dir, "reports")
        tmp, final = reports / f".{job.job_id}.tmp", reports / job.job_id
        shutil.rmtree(tmp, ignore_errors=True)
        eng.write_reports(result, tmp)
        summary = result.summary() | job.extra
        summary |= {"status": status, "notes": list(result.notes), "folder": job.folder}
        if status in _FAILED_STATUSES:
            summary["reason"] = _reason(result)
        (tmp / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)

    def _finish_record(self, job: Job, result: Result, status: str) -> None:
        counts = {"rows": result.summary()["rows"], "operations": result.operations}
        error = _reason(result) if status in _FAILED_STATUSES else None
        if status == "DUPLICATE":
            error = result.notes[-1]
        jobs.finish_job(
            self.db,
            job.job_id,
            status,
            counts,
            error=error,
            state_version=result.state_version,
            sha256=result.sha256,
        )

    def _move_out(self, job: Job, status: str) -> str:
        """``processing/<job id>/name`` → ``done/`` or ``failed/``, never over another file."""
        where = "failed" if status in _FAILED_STATUSES else "done"
        target_dir = state_dir(job.org_dir, where)
        if not os.path.lexists(job.path):  # removed by hand meanwhile: nothing to move
            return "gone"
        names = (job.name, fit_name(f"{job.job_id}-{job.name}"))
        for name in names:
            if _place(job.path, target_dir / name):
                with contextlib.suppress(OSError):
                    job.path.parent.rmdir()
                return f"{where}/{name}"
        raise FolderProblem(f"cannot move {job.path} to {target_dir}")

    # - recovery -

    def recover(self) -> int:
        """Finish the jobs of workers that are gone (and this one's unfinished ones)."""
        stale_after = dt.timedelta(seconds=self.settings.stale_after)
        done = 0
        for c in claims.in_flight(self.db):
            if c.worker != self.worker:
                if claims.is_alive(c.worker, c.heartbeat, stale_after):
                    continue
                if not claims.take_over(self.db, c.job_id, c.worker, self.worker):
                    continue
            try:
                done += self._recover(c)
            except FolderProblem as exc:
                self._warn_once(str(exc), path=str(self.root / c.org), reason=str(exc))
        return done

    def _recover(self, c: claims.Claim) -> int:
        org_dir = self.root / c.org
        job = Job(c.job_id, c.org, org_dir, c.folder, "", c.name)
        jobs.release_org_lock(self.db, c.org, c.job_id)  # held by the dead worker, if at all
        held = _held_files(org_dir / "processing" / c.job_id)
        summary = _read_summary(org_dir / "reports" / c.job_id)
        if not held:
            return self._recover_unheld(job, summary)
        job.name = held[0]
        if summary is not None:
            self._recover_reported(job, str(summary["status"]))
            return 1
        ops = {} if job.dry_run else claims.committed_operations(self.db, job.job_id)
        if ops:
            self.log("job_recovered", job, action="committed")
            self._conclude(job, self._committed_result(job, ops))
            return 1
        return self._rerun(job)

    def _recover_unheld(self, job: Job, summary: dict[str, Any] | None) -> int:
        if summary is None:  # never moved in: the file is still in the inbox (or gone)
            self.log("job_recovered", job, action="released")
            claims.release(self.db, job.job_id)
            with contextlib.suppress(OSError):
                (job.org_dir / "processing" / job.job_id).rmdir()
            return 0
        status = str(summary["status"])
        self._ensure_finished(job, status)
        where = "failed" if status in _FAILED_STATUSES else "done"
        self.log("job_recovered", job, action="closed")
        claims.close(self.db, job.job_id, where, None)
        return 0

    def _recover_reported(self, job: Job, status: str) -> None:
        self.log("job_recovered", job, action="moved")
        self._ensure_finished(job, status)
        dest = self._move_out(job, status)
        claims.close(self.db, job.job_id, dest.split("/")[0], dest)
        self.log("job_finished", job, status=status, moved_to=dest)

    def _ensure_finished(self, job: Job, status: str) -> None:
        if jobs.get_job(self.db, job.job_id).status != status:
            jobs.finish_job(self.db, job.job_id, status, error="recovered after the worker stopped")

    def _committed_result(self, job: Job, ops: dict[str, int]) -> Result:
        note = (
            "the worker stopped after this job's apply committed and before its reports were "
            "written: the operations are those of the audit trail; row counts are unknown"
        )
        result = _bare_result(job, Status.COMPLETED, note)
        result.operations |= ops
        with contextlib.suppress(OSError):
            result.sha256 = sha256_of(job.path)
        return result

    def _rerun(self, job: Job) -> int:
        try:
            jobs.acquire_org_lock(self.db, job.org, job.job_id)
        except StaleOrBusy:
            return 0  # the claim is ours now: the next pass tries again
        try:
            self.log("job_recovered", job, action="rerun")
            _load_config_into(job)
            self._run_job(job)
        finally:
            jobs.release_org_lock(self.db, job.org, job.job_id)
        return 1

    # - test hooks -

    def _crash_point(self, name: str) -> None:
        if os.environ.get(CRASH_ENV) == name:
            self.log("test_crash", self._current, at=name)
            os.kill(os.getpid(), signal.SIGKILL)


def _load_config_into(job: Job) -> None:
    """The folder's configuration, or the problem with it, for ``job``."""
    try:
        job.config, job.problem = load_config(job.org_dir), None
    except FolderProblem as exc:
        job.config, job.problem = None, str(exc)


def _fingerprint(path: Path) -> tuple[os.stat_result | None, str | None, str | None]:
    """The file's lstat and SHA-256 (regular files only), or why it cannot be read."""
    try:
        info = os.lstat(path)
        sha = sha256_of(path) if stat.S_ISREG(info.st_mode) else None
    except OSError as exc:
        return None, None, f"cannot read {path.name}: {exc.strerror or exc}"
    return info, sha, None


def _reason(result: Result) -> str:
    """Why a file failed, in one line: its file-level errors, else the job's notes."""
    issues = result.issues
    errors = issues[(issues["severity"] == "error") & issues["row"].isna()]
    messages = [str(m) for m in errors["message"]] or list(result.notes)
    return "; ".join(messages) or result.status.value


def _place(source: Path, target: Path) -> bool:
    """Move ``source`` to ``target`` unless another file is there; True when moved."""
    try:
        if _same_file(source, target):  # linked before a crash: only the unlink is left
            os.unlink(source)
            return True
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError:  # no hard links here: rename, checking first
        if os.path.lexists(target):
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _held_files(path: Path) -> list[str]:
    if not real_dir(path):
        return []
    return sorted(os.listdir(path))


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "status" in data else None


def _install_test_pause(worker: Worker) -> None:
    """``CSVIMPORT_TEST_PAUSE_BEFORE_COMMIT``: sleep before an apply transaction commits."""
    seconds = float(os.environ.get(PAUSE_ENV) or 0)
    if seconds <= 0:
        return

    @event.listens_for(worker.db, "before_cursor_execute")
    def _mark(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().lower().startswith("insert into audit_events"):
            conn.info[APPLYING] = True  # a customers apply; a users apply marks itself

    @event.listens_for(worker.db, "commit")
    def _pause(conn: Any) -> None:
        if conn.info.pop(APPLYING, False):
            worker.log("test_pause_before_commit", worker._current, seconds=seconds)
            time.sleep(seconds)
