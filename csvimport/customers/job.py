"""One customers job end to end: read → validate → plan → (apply) → report.

The users engine's stages and guarantees, for the customer file (SPEC 11): the same reader,
issue machinery, ``Result`` and report writers (``engine.write_reports``), the same job records
and locks. A dry run reads the store and writes nothing. An apply records a job (kind
``customers``), takes the customers lock (one customers job at a time, so two files cannot
both create one customer) and then the lock of every existing org the plan changes (the same
one-job-per-org rule as users imports: exit 4 when one is busy), and applies the plan in one
transaction (exit 5 and nothing applied when it fails).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from csvimport import engine as eng
from csvimport.customers import catalog as catalog_mod
from csvimport.customers.apply import apply_customers
from csvimport.customers.apply import approve as approve_pending
from csvimport.customers.plan import make_plan
from csvimport.customers.store import CustomerState, load_state
from csvimport.customers.validate import validate
from csvimport.issues import concat_issues
from csvimport.model import (
    CUSTOMER_OPERATION_KINDS,
    FileRejected,
    Options,
    Result,
    StaleOrBusy,
    Status,
    Table,
    UsageError,
)
from csvimport.read import read_table, sha256_of
from csvimport.store import jobs

# The lock key of customers jobs: an org id can never start with '@'.
CUSTOMERS_LOCK = "@customers"


def run(
    options: Options,
    *,
    db: Any = None,
    job_id: str | None = None,
    progress: eng.Progress = eng._quiet,
    fail_after: int | None = None,
) -> Result:
    """Run one customers job; reports go to ``options.report_dir`` when it is set."""
    assert options.file is not None
    result = Result(
        job_id or eng.new_job_id(),
        options,
        Status.COMPLETED,
        file=options.file.name,
        kind="customers",
    )
    result.operations = dict.fromkeys(CUSTOMER_OPERATION_KINDS, 0)
    timer = eng.Timer()
    try:
        _read_and_run(result, options, db, timer, progress, fail_after)
    finally:
        result.timings = timer.timings
        if options.report_dir is not None:
            eng.write_reports(result, options.report_dir)
    return result


def batch_job(options: Options, db: Any, job_id: str) -> Result:
    """The drop-folder worker's entry for ``DIR/_customers/`` (the contract of ``engine.run``).

    The worker owns the job record (``options.source == "batch"``); this runs the job.
    """
    return run(options, db=db, job_id=job_id)


def _read_and_run(
    result: Result,
    options: Options,
    db: Any,
    timer: eng.Timer,
    progress: eng.Progress,
    fail_after: int | None,
) -> None:
    assert options.file is not None
    if not options.file.is_file():
        raise UsageError(f"file not found: {options.file}")
    result.sha256 = sha256_of(options.file)
    progress("read", 0, 1)
    try:
        with timer.stage("read"):
            table = read_table(options.file, options, catalog_mod.default())
    except FileRejected as exc:
        eng.reject_file(result, exc.issues)
        return
    result.table, result.encoding, result.delimiter = table, table.encoding, table.delimiter
    if db is None:
        from csvimport.store.db import connect

        db = connect(None)
    if options.dry_run:
        _plan(result, table, db, timer, progress)
        return
    _locked_apply(result, table, db, timer, progress, fail_after)


def _plan(
    result: Result, table: Table, db: Any, timer: eng.Timer, progress: eng.Progress
) -> CustomerState:
    cat = catalog_mod.default()
    cells = {c.key: table.frame[c.index] for c in table.columns if c.kind == "field"}
    empty: list[str] = []
    with timer.stage("snapshot"):
        state = load_state(
            db,
            external_ids=cells.get("external_id", empty),
            org_ids=[*cells.get("existing_org_id", empty), *cells.get("external_id", empty)],
            emails=cells.get("admin_email", empty),
        )
    progress("validate", 0, len(table.frame))
    with timer.stage("validate"):
        rows = validate(table, cat, state.templates)
    progress("plan", 0, len(table.frame))
    with timer.stage("plan"):
        plan, found = make_plan(rows, state, cat, result.sha256)
    eng.finish(result, concat_issues([rows.issues, found]), table, rows, plan)
    return state


def _locked_apply(
    result: Result,
    table: Table,
    db: Any,
    timer: eng.Timer,
    progress: eng.Progress,
    fail_after: int | None,
) -> None:
    batch = result.options.source == "batch"  # a batch worker owns its job record
    if not batch:
        jobs.create_job(
            db,
            org=None,
            kind="customers",
            source=result.options.source,
            file=result.file,
            sha256=result.sha256,
            dry_run=False,
            job_id=result.job_id,
        )
    held: list[str] = []
    try:
        _lock(db, CUSTOMERS_LOCK, result.job_id, held)
        if not batch:
            jobs.start_job(db, result.job_id)
        state = _plan(result, table, db, timer, progress)
        _apply(result, state, db, timer, progress, held, fail_after)
    except Exception as exc:  # busy (exit 4) or broken store: the job record says why
        result.status = Status.FAILED
        result.notes.append(str(exc) or type(exc).__name__)
        raise
    finally:
        for key in reversed(held):
            jobs.release_org_lock(db, key, result.job_id)
        if not batch:
            counts = {"rows": result.summary()["rows"], "operations": result.operations}
            jobs.finish_job(db, result.job_id, result.status.value, counts, error=_error(result))


def _lock(db: Any, key: str, job_id: str, held: list[str]) -> None:
    jobs.acquire_org_lock(db, key, job_id)
    held.append(key)


def _apply(
    result: Result,
    state: CustomerState,
    db: Any,
    timer: eng.Timer,
    progress: eng.Progress,
    held: list[str],
    fail_after: int | None,
) -> None:
    plan = result.plan
    if result.status == Status.REJECTED or plan is None or plan.operations.empty:
        return
    changed = _changed_orgs(plan.operations, state)
    for org in sorted(changed):
        _lock(db, org, result.job_id, held)
    statuses = {str(k): str(v) for k, v in state.customers["status"].items()}
    progress("apply", 0, len(plan.operations))
    try:
        with timer.stage("apply"):
            apply_customers(db, plan, result.job_id, changed, statuses, fail_after=fail_after)
    except Exception as exc:  # any failure: nothing was applied (one transaction)
        if isinstance(exc, StaleOrBusy):
            raise
        result.status = Status.FAILED
        result.notes.append(f"the job failed and nothing was applied: {exc}")


def _changed_orgs(ops: pd.DataFrame, state: CustomerState) -> dict[str, int]:
    """Existing orgs the plan writes to, with the version they were planned on."""
    status = state.customers["status"]
    versions = state.orgs["state_version"]
    out: dict[str, int] = {}
    for op, ext, data in zip(ops["op"], ops["external_id"], ops["data"], strict=True):
        if op == "attach_customer":
            org = data["attributes"]["org_id"]
        elif op == "update_customer" and status[ext] == "provisioned":
            org = data["org_id"]
        else:
            continue
        if org in versions.index:
            out[str(org)] = int(versions[org])
    return out


def _error(result: Result) -> str | None:
    return result.notes[-1] if result.status == Status.FAILED and result.notes else None


def approve(db: Any, external_id: str, source: str = "cli") -> dict[str, Any]:
    """``customers approve ID``: a job of its own, under the customers lock and the org's."""
    from csvimport.customers.store import get_customer

    job_id = eng.new_job_id()
    org = get_customer(db, external_id)["target_org_id"]
    jobs.create_job(
        db,
        org=org,
        kind="customers",
        source=source,
        dry_run=False,
        job_id=job_id,
        options={"approve": external_id},
    )
    held: list[str] = []
    status, error = "FAILED", None
    try:
        _lock(db, CUSTOMERS_LOCK, job_id, held)
        _lock(db, org, job_id, held)
        jobs.start_job(db, job_id)
        done = approve_pending(db, external_id, job_id)
        status = "COMPLETED"
        return done
    except Exception as exc:
        error = str(exc)
        raise
    finally:
        for key in reversed(held):
            jobs.release_org_lock(db, key, job_id)
        jobs.finish_job(
            db,
            job_id,
            status,
            {"operations": {"attach_customer": int(status == "COMPLETED")}},
            error=error,
        )
