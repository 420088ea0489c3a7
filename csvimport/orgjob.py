"""The org half of a users job: snapshot → validate → plan → (apply), under the org lock.

Split from ``engine`` so that a validation without ``--org`` never imports the store or
creates a database. A dry run reads the snapshot and writes nothing at all; an apply records
a job, takes the org lock (one job per org, exit 4 when busy), plans against a snapshot taken
under that lock and applies the plan in one transaction (exit 5 and nothing applied when it
fails).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from csvimport import engine as eng
from csvimport.catalog import Catalog
from csvimport.model import FileRejected, Issue, Options, Result, Status, Table, UsageError
from csvimport.plan import AFTER_COLUMNS, ORG_USER_COLUMNS, make_plan
from csvimport.store import jobs
from csvimport.store.snapshot import OrgNotFound, OrgSnapshot, load_snapshot, refresh_cache
from csvimport.validate import validate


def default_max_deletes(users: int) -> int:
    """SPEC 5: the larger of 10 and 10 % of the org's users, rounded down."""
    return max(10, math.floor(users * 0.10))


@dataclass
class OrgJob:
    """What one org-side job works with, passed as one object rather than seven arguments."""

    result: Result
    table: Table
    cat: Catalog
    options: Options
    db: Any
    timer: eng.Timer
    progress: eng.Progress


def run_with_org(job: OrgJob) -> None:
    result, options, timer, progress = job.result, job.options, job.timer, job.progress
    assert options.org is not None
    if job.db is None:
        from csvimport.store.db import connect

        job.db = connect(None)
    db = job.db
    if options.dry_run:
        _plan(job)
        return
    if options.source != "batch":  # a batch worker creates and finishes its own job record
        jobs.create_job(
            db,
            org=options.org,
            source=options.source,
            file=result.file,
            sha256=result.sha256,
            mode=options.mode,
            dry_run=False,
            options={"max_deletes": options.max_deletes},
            job_id=result.job_id,
        )
    try:
        jobs.acquire_org_lock(db, options.org, result.job_id)
    except Exception:
        if options.source != "batch":
            jobs.finish_job(db, result.job_id, "FAILED", error="org busy")
        raise
    planned: int | None = None
    try:
        if options.source != "batch":
            jobs.start_job(db, result.job_id)
        _plan(job)
        planned = result.state_version
        _apply(result, db, timer, progress)
    except FileRejected:
        result.status = Status.REJECTED  # the engine reports it; the job record must say so
        raise
    finally:
        jobs.release_org_lock(db, options.org, result.job_id)
        if options.source != "batch":
            jobs.finish_job(
                db,
                result.job_id,
                result.status.value,
                job_counts(result),
                state_version=result.state_version,
                error=_error(result),
            )
    if result.state_version != planned and result.status != Status.FAILED:
        with timer.stage("snapshot_refresh"):
            refresh_cache(db, options.org)


def _plan(job: OrgJob) -> None:
    result, table, cat, options, db = job.result, job.table, job.cat, job.options, job.db
    timer, progress = job.timer, job.progress
    assert options.org is not None
    email = table.column_for("email")

    def keys() -> pd.Series:  # only read when another org holds users
        return pd.Series([], dtype="str") if email is None else table.frame[email.index].str.lower()

    with timer.stage("snapshot"):
        try:
            snap = load_snapshot(db, options.org, emails=keys)
        except OrgNotFound as exc:
            raise UsageError(str(exc)) from exc
    _check_ready(db, snap)
    result.state_version = snap.state_version
    progress("validate", 0, len(table.frame))
    with timer.stage("validate"):
        # The requirement checks are left to the planner, which runs them on the second core
        # beside its first steps (``Validated.pending``).
        checked = validate(table, cat, options.mode, current=snap.users, defer=True)
    # From here on the rows carry the users they are about, and the planner reads two
    # columns of the "after the row" view: the rest of both is ~0.5 GB at 1M rows. The
    # planner gets the only references to the aligned users and the snapshot, so it can
    # let them go once its payloads and rules are done (its memory peak is after that);
    # the reports keep the validated rows without them.
    org_users = len(snap.users)
    rows_handed = [replace(checked, after=checked.after[list(AFTER_COLUMNS)])]
    snap_handed = [snap.narrowed(ORG_USER_COLUMNS)]
    checked = replace(checked, current=None, current_at=None, pending=None)
    del snap
    progress("plan", 0, len(table.frame))
    with timer.stage("plan"):
        plan, issues, _rows = make_plan(
            rows_handed.pop(), snap_handed.pop(), cat, options.mode, result.sha256
        )
    eng.finish(result, issues, table, checked, plan)
    _guard_deletes(result, org_users, options, issues)


def _check_ready(db: Any, snap: OrgSnapshot) -> None:
    """SPEC 11: a users file for an org whose customer is not provisioned is refused."""
    import importlib

    try:
        cstore = importlib.import_module("csvimport.customers.store")
    except ImportError:
        return
    status = cstore.status_of_org(db, snap.org_id)
    if status is not None and status != "provisioned":
        raise FileRejected(
            [
                Issue(
                    code="org_not_ready",
                    column="",
                    message=f"the customer of org {snap.org_id} is {status}, not provisioned: "
                    "approve or finish provisioning the customer, then upload the users again",
                )
            ]
        )


def _guard_deletes(result: Result, org_users: int, options: Options, issues: Any) -> None:
    """``too_many_deletes``: the whole file is refused, in the dry run too."""
    limit = options.max_deletes
    if limit is None:
        limit = default_max_deletes(org_users)
    deletes = result.operations.get("delete_user", 0)
    if deletes <= limit:
        return
    refusal = Issue(
        code="too_many_deletes",
        column="",
        message=f"the file would delete {deletes} users, more than the limit of {limit} "
        f"({org_users} users in the org): check the package columns, or raise the limit "
        "with --max-deletes if the deletions are intended",
    )
    result.plan = None
    eng.reject_whole_file(result, issues, refusal)


def _apply(result: Result, db: Any, timer: eng.Timer, progress: eng.Progress) -> None:
    from csvimport.apply import apply_plan

    plan = result.plan
    if result.status == Status.REJECTED or plan is None or plan.operations.empty:
        return
    progress("apply", 0, len(plan.operations))
    try:
        with timer.stage("apply"):
            result.state_version = apply_plan(db, plan, result.job_id)
    except Exception as exc:  # any failure: nothing was applied (one transaction)
        if type(exc).__name__ == "StaleOrBusy":
            raise
        result.status = Status.FAILED
        result.notes.append(f"the job failed and nothing was applied: {exc}")


def job_counts(result: Result) -> dict[str, Any]:
    return {"rows": result.summary()["rows"], "operations": result.operations}


def _error(result: Result) -> str | None:
    return result.notes[-1] if result.status == Status.FAILED and result.notes else None
