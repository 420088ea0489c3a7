"""Claims on drop-folder files: the database decides which ``watch`` worker owns which file.

Several workers, on one machine or on several sharing PostgreSQL, scan the same folders; only
the database can arbitrate between them. Decisions:

- A claim is a row of ``batch_files`` inserted with ``INSERT ... ON CONFLICT DO NOTHING`` on a
  unique ``active_key`` (a hash of org, folder and file name), together with the job record, in
  one committed transaction: exactly one worker wins, and the claim survives a crash.
- The key is cleared when the file has left ``processing/``, so a later file of the same name
  (the HR system's daily ``users.csv``) can be claimed again.
- A claim whose worker is gone may be taken over by another worker with a compare-and-set
  update on ``worker``: two recoverers cannot both win. "Gone" means: on this host, the process
  (pid and start time, so a reused pid is not mistaken for it) no longer exists; on another
  host, its heartbeat is older than ``stale_after``.
- Whether a crashed apply committed is read from the audit trail: ``apply`` writes the audit
  events of a job in the same transaction as its changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import psutil
from sqlalchemy import Engine, delete, exists, func, insert, or_, select, update

from csvimport.store.db import insert_ignore, transaction
from csvimport.store.models import AuditEvent, BatchFile, Job, utcnow

APPLIED = ("COMPLETED", "COMPLETED_WITH_ERRORS")


@dataclass(frozen=True)
class Claim:
    """An in-flight claim, as recovery needs it."""

    job_id: str
    org: str
    folder: str
    name: str
    worker: str
    heartbeat: dt.datetime


def worker_id() -> str:
    """This process as a claimer: ``host:pid:start`` (start time in centiseconds)."""
    start = int(psutil.Process().create_time() * 100)
    return f"{socket.gethostname()}:{os.getpid()}:{start}"


def is_alive(worker: str, heartbeat: dt.datetime, stale_after: dt.timedelta) -> bool:
    """Whether the claimer ``worker`` may still be working (see the module notes)."""
    host, pid, start = [*worker.rsplit(":", 2), "", ""][:3]
    if host == socket.gethostname() and pid.isdigit() and start.isdigit():
        return _process_alive(int(pid), int(start))
    if heartbeat.tzinfo is None:  # SQLite gives naive datetimes back; we store UTC
        heartbeat = heartbeat.replace(tzinfo=dt.UTC)
    return utcnow() - heartbeat <= stale_after


def _process_alive(pid: int, start: int) -> bool:
    try:
        return int(psutil.Process(pid).create_time() * 100) == start
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # access denied: it exists
        return True


def file_key(org: str, folder: str, name: str) -> str:
    """The claim key of file ``name`` (any bytes) in ``<org>/<folder>``."""
    raw = b"\0".join((org.encode("utf-8"), folder.encode("utf-8"), os.fsencode(name)))
    return hashlib.sha256(raw).hexdigest()


def claim(
    engine: Engine,
    *,
    job_id: str,
    key: str,
    org: str,
    folder: str,
    name: str,
    worker: str,
    job: dict[str, Any],
) -> bool:
    """Claim a file and record its job (status CREATED) in one transaction; False if taken."""
    now = utcnow()
    values = {"job_id": job_id, "active_key": key, "org": org, "folder": folder, "name": name}
    with transaction(engine) as conn:
        stmt = insert_ignore(conn, BatchFile, "active_key")
        stmt = stmt.values(**values, worker=worker, heartbeat=now, claimed_at=now)
        conn.execute(stmt)  # no rowcount check: psycopg reports -1 for an INSERT here
        holder = conn.execute(select(BatchFile.job_id).where(BatchFile.active_key == key))
        if holder.scalar() != job_id:
            return False
        conn.execute(
            insert(Job),
            {"id": job_id, "source": "batch", "status": "CREATED", "created_at": now, **job},
        )
    return True


def release(engine: Engine, job_id: str) -> None:
    """Forget a claim whose file never reached ``processing/``, and its job record."""
    with transaction(engine) as conn:
        conn.execute(delete(BatchFile).where(BatchFile.job_id == job_id))
        conn.execute(delete(Job).where(Job.id == job_id))


def beat(engine: Engine, job_id: str, worker: str) -> None:
    """Tell other workers that ``worker`` still holds the claim of ``job_id``."""
    with transaction(engine) as conn:
        conn.execute(
            update(BatchFile)
            .where(BatchFile.job_id == job_id, BatchFile.worker == worker)
            .values(heartbeat=utcnow())
        )


def take_over(engine: Engine, job_id: str, old: str, new: str) -> bool:
    """Move the claim of ``job_id`` from the gone worker ``old`` to ``new``; True if won."""
    with transaction(engine) as conn:
        done = conn.execute(
            update(BatchFile)
            .where(BatchFile.job_id == job_id, BatchFile.worker == old)
            .where(BatchFile.active_key.is_not(None))
            .values(worker=new, heartbeat=utcnow())
        )
    return bool(done.rowcount == 1)


def close(engine: Engine, job_id: str, outcome: str, dest: str | None) -> None:
    """The file left ``processing/`` (to ``dest``): the claim is no longer in flight."""
    with transaction(engine) as conn:
        conn.execute(
            update(BatchFile)
            .where(BatchFile.job_id == job_id)
            .values(active_key=None, outcome=outcome, dest=dest, finished_at=utcnow())
        )


def in_flight(engine: Engine) -> list[Claim]:
    """Every claim whose file has not left ``processing/`` yet, oldest first."""
    stmt = (
        select(BatchFile)
        .where(BatchFile.active_key.is_not(None))
        .order_by(BatchFile.claimed_at, BatchFile.job_id)
    )
    with transaction(engine, write=False) as conn:
        rows = [r._mapping for r in conn.execute(stmt)]
    fields = Claim.__dataclass_fields__
    return [Claim(**{k: m[k] for k in fields}) for m in rows]


def restart(engine: Engine, job_id: str, worker: str, sha256: str | None) -> None:
    """Mark the job RUNNING on ``worker`` (again, after a crash: its old outcome is cleared)."""
    values: dict[str, Any] = {
        "status": "RUNNING",
        "started_at": utcnow(),
        "worker": worker,
        "finished_at": None,
        "error": None,
    }
    if sha256 is not None:
        values["sha256"] = sha256
    with transaction(engine) as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(**values))


def applied_before(
    engine: Engine, *, org: str | None, kind: str, sha256: str, job_id: str
) -> str | None:
    """The id of an earlier job that applied the same content to the same org, if any.

    A job counts when it finished as applied, or when its apply committed (its audit events
    exist) even if its worker died before recording the outcome.
    """
    committed = exists().where(AuditEvent.job_id == Job.id)
    stmt = (
        select(Job.id)
        .where(Job.sha256 == sha256, Job.kind == kind, Job.id != job_id)
        .where(Job.dry_run.is_(False))
        .where(Job.org_id.is_(None) if org is None else Job.org_id == org)
        .where(or_(Job.status.in_(APPLIED), committed))
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )
    with transaction(engine, write=False) as conn:
        found = conn.execute(stmt).scalar()
    return None if found is None else str(found)


def committed_operations(engine: Engine, job_id: str) -> dict[str, int]:
    """Operations the job's committed apply wrote, by kind (empty: nothing was applied)."""
    stmt = (
        select(AuditEvent.op, func.count())
        .where(AuditEvent.job_id == job_id)
        .group_by(AuditEvent.op)
    )
    with transaction(engine, write=False) as conn:
        return {str(op): int(n) for op, n in conn.execute(stmt)}
