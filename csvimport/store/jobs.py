"""Job records and the one-job-per-org lock.

Decisions:
- A job row is written when the job is created and updated when it starts and finishes, each in
  its own short transaction, so ``jobs list`` shows running jobs and a crash leaves a trace.
- The org lock is a row of ``org_locks`` (primary key: the org) inserted in its own committed
  transaction with ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL alike): the
  database arbitrates between workers on one machine or many sharing PostgreSQL.
- A lock is *stale*, and may be broken by the next worker, when its holder is gone: the worker
  (``host:pid``) runs on this host and that pid no longer exists, or its heartbeat is older than
  ``stale_after`` (default 10 minutes; long jobs call ``heartbeat``). Breaking deletes the row
  only if it still names the stale job, so two breakers cannot both win.
- ``recover_jobs`` marks RUNNING jobs of dead workers FAILED and frees their locks: their apply
  transaction was rolled back by the database, so nothing of them was applied.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from csvimport.model import StaleOrBusy
from csvimport.store.db import insert_ignore, transaction
from csvimport.store.models import JOB_STATUSES, Job, OrgLock, utcnow

STALE_AFTER = dt.timedelta(minutes=10)
_FINAL = tuple(s for s in JOB_STATUSES if s not in ("CREATED", "RUNNING"))


class JobNotFound(LookupError):
    """No job with that id is stored."""


@dataclass(frozen=True)
class JobInfo:
    id: str
    org: str | None
    kind: str
    source: str
    folder: str | None
    file: str | None
    sha256: str | None
    mode: str | None
    dry_run: bool
    options: dict[str, Any] | None
    status: str
    counts: dict[str, Any] | None
    state_version: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    worker: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("created_at", "started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def worker_id() -> str:
    """This process as a lock holder: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def create_job(
    engine: Engine,
    *,
    org: str | None,
    kind: str = "users",
    source: str = "cli",
    file: str | None = None,
    sha256: str | None = None,
    mode: str | None = None,
    dry_run: bool = True,
    options: dict[str, Any] | None = None,
    folder: str | None = None,
    job_id: str | None = None,
) -> str:
    """Record a new job (status CREATED); return its id (a UUID unless given)."""
    jid = job_id or str(uuid.uuid4())
    values = {
        "id": jid,
        "org_id": org,
        "kind": kind,
        "source": source,
        "file": file,
        "sha256": sha256,
        "mode": mode,
        "dry_run": dry_run,
        "options": options,
        "folder": folder,
        "status": "CREATED",
        "created_at": utcnow(),
    }
    with transaction(engine) as conn:
        conn.execute(insert(Job), values)
    return jid


def start_job(engine: Engine, job_id: str, worker: str | None = None) -> None:
    """Mark the job RUNNING on ``worker`` (this process by default)."""
    _update(engine, job_id, status="RUNNING", started_at=utcnow(), worker=worker or worker_id())


def finish_job(
    engine: Engine,
    job_id: str,
    status: str,
    counts: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    state_version: int | None = None,
    sha256: str | None = None,
) -> None:
    """Record the job's outcome (a final status of ``JOB_STATUSES``)."""
    status = str(getattr(status, "value", status))
    if status not in _FINAL:
        raise ValueError(f"{status!r} is not a final job status ({', '.join(_FINAL)})")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if counts is not None:
        values["counts"] = counts
    if state_version is not None:
        values["state_version"] = state_version
    if sha256 is not None:
        values["sha256"] = sha256
    _update(engine, job_id, **values)


def _update(engine: Engine, job_id: str, **values: Any) -> None:
    with transaction(engine) as conn:
        done = conn.execute(update(Job).where(Job.id == job_id).values(**values))
        if done.rowcount != 1:
            raise JobNotFound(f"no job {job_id!r}")


def get_job(engine: Engine, job_id: str) -> JobInfo:
    with transaction(engine, write=False) as conn:
        row = conn.execute(select(Job).where(Job.id == job_id)).first()
    if row is None:
        raise JobNotFound(f"no job {job_id!r}")
    return _info(row._mapping)


def list_jobs(engine: Engine, org: str | None = None, limit: int | None = None) -> list[JobInfo]:
    """Jobs, newest first, of one org or all."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id)
    if org is not None:
        stmt = stmt.where(Job.org_id == org)
    if limit is not None:
        stmt = stmt.limit(limit)
    with transaction(engine, write=False) as conn:
        return [_info(r._mapping) for r in conn.execute(stmt)]


def _info(m: Any) -> JobInfo:
    return JobInfo(
        **{k: m[k] for k in JobInfo.__dataclass_fields__ if k not in ("org", "created_at")},
        org=m["org_id"],
        created_at=m["created_at"],
    )


# -- the org lock ------------------------------------------------------------------------


def acquire_org_lock(
    engine: Engine,
    org: str,
    job_id: str,
    *,
    worker: str | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
) -> None:
    """Take org ``org`` for ``job_id``, or raise ``StaleOrBusy`` when a live job holds it."""
    me = worker or worker_id()
    for _ in range(2):
        if _try_insert_lock(engine, org, job_id, me):
            return
        holder = _lock_of(engine, org)
        if holder is None:
            continue  # released between our insert and our look
        if holder["job_id"] == job_id:
            return
        if not _is_stale(holder, stale_after):
            raise StaleOrBusy(f"org {org} is busy with job {holder['job_id']}")
        _break_lock(engine, org, holder["job_id"])
    raise StaleOrBusy(f"org {org} is busy with another job")


def release_org_lock(engine: Engine, org: str, job_id: str) -> None:
    """Free the org if ``job_id`` holds it (a no-op otherwise)."""
    _break_lock(engine, org, job_id)


def heartbeat(engine: Engine, org: str, job_id: str) -> None:
    """Tell other workers that ``job_id`` is still alive."""
    with transaction(engine) as conn:
        conn.execute(
            update(OrgLock)
            .where(OrgLock.org_id == org, OrgLock.job_id == job_id)
            .values(heartbeat=utcnow())
        )


def recover_jobs(engine: Engine, stale_after: dt.timedelta = STALE_AFTER) -> list[str]:
    """Fail RUNNING jobs whose worker is gone and free their locks; return their ids."""
    with transaction(engine, write=False) as conn:
        running = [r._mapping for r in conn.execute(select(Job).where(Job.status == "RUNNING"))]
        locks = {r.job_id: r._mapping for r in conn.execute(select(OrgLock))}
    dead = []
    for job in running:
        lock = locks.get(job["id"])
        probe = lock or {"worker": job["worker"], "heartbeat": job["started_at"]}
        if _is_stale(probe, stale_after):
            dead.append(job["id"])
            finish_job(engine, job["id"], "FAILED", error="the worker stopped mid-job")
            if lock is not None:
                _break_lock(engine, lock["org_id"], job["id"])
    return dead


def _try_insert_lock(engine: Engine, org: str, job_id: str, worker: str) -> bool:
    now = utcnow()
    values = {"org_id": org, "job_id": job_id, "worker": worker, "acquired_at": now}
    with transaction(engine) as conn:
        stmt = insert_ignore(conn, OrgLock, "org_id").values(**values, heartbeat=now)
        return bool(conn.execute(stmt).rowcount == 1)


def _lock_of(engine: Engine, org: str) -> dict[str, Any] | None:
    with transaction(engine, write=False) as conn:
        row = conn.execute(select(OrgLock).where(OrgLock.org_id == org)).first()
    return dict(row._mapping) if row else None


def _break_lock(engine: Engine, org: str, job_id: str) -> None:
    with transaction(engine) as conn:
        conn.execute(delete(OrgLock).where(OrgLock.org_id == org, OrgLock.job_id == job_id))


def _is_stale(holder: Any, stale_after: dt.timedelta) -> bool:
    """The holder's process is gone (same host) or silent for longer than ``stale_after``."""
    host, _, pid = str(holder.get("worker") or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    beat = holder.get("heartbeat")
    if beat is None:
        return True
    if beat.tzinfo is None:  # SQLite gives naive datetimes back; we store UTC
        beat = beat.replace(tzinfo=dt.UTC)
    return bool(utcnow() - beat > stale_after)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
