"""One customers job end to end: read → validate → plan → (apply) → report.

The users engine's stages and guarantees, for the customer file (SPEC 11): the same reader,
issue machinery, ``Result``, timing and report writers (``engine.run_stages``), the same job
records and locks. A dry run reads the store and writes nothing. An apply records a job (kind
``customers``), takes the customers lock (one customers job at a time, so two files cannot
both create one customer) and then the lock of every existing org the plan changes (the same
one-job-per-org rule as users imports: exit 4 when one is busy), and applies the plan in one
transaction (exit 5 and nothing applied when it fails).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from csvimport import engine as eng
from csvimport.customers import catalog as catalog_mod
from csvimport.customers.apply import apply_customers
from csvimport.customers.apply import approve as approve_pending
from csvimport.customers.plan import make_plan
from csvimport.customers.store import CustomerState, get_customer, load_state
from csvimport.customers.validate import validate
from csvimport.issues import concat_issues
from csvimport.model import FileRejected, Options, Result, StaleOrBusy, Status, Table, UsageError
from csvimport.read import read_table, sha256_of
from csvimport.store import jobs

# The lock key of customers jobs: an org id can never start with '@'.
CUSTOMERS_LOCK = "@customers"


def run(
    options: Options,
    *,
    db: Any = None,
    job_id: str | None = None,
    progress: eng.Progress | None = None,
    fail_after: int | None = None,
) -> Result:
    """Run one customers job; reports go to ``options.report_dir`` when it is set.

    ``fail_after`` is a test hook: the apply fails after that many operations.
    """
    assert options.file is not None
    result = Result(
        job_id or eng.new_job_id(),
        options,
        Status.COMPLETED,
        file=options.file.name,
        kind="customers",
    )
    job = _Job(result, db, progress or (lambda stage, done, total: None), fail_after)
    return eng.run_stages(result, job.run)


def batch_job(options: Options, db: Any, job_id: str) -> Result:
    """The drop-folder worker's entry for ``DIR/_customers/`` (the contract of ``engine.run``).

    The worker owns the job record (``options.source == "batch"``); this runs the job.
    """
    return run(options, db=db, job_id=job_id)


@contextmanager
def _locks(db: Any, job_id: str, *keys: str) -> Iterator[list[str]]:
    """Hold the org locks of ``keys`` (more may be added to the list); release them all."""
    held: list[str] = []
    try:
        for key in keys:
            jobs.acquire_org_lock(db, key, job_id)
            held.append(key)
        yield held
    finally:
        for key in reversed(held):
            jobs.release_org_lock(db, key, job_id)


@dataclass
class _Job:
    """The state of one run: what every stage needs, instead of long parameter lists."""

    result: Result
    db: Any
    progress: eng.Progress
    fail_after: int | None
    timer: eng.Timer = field(default_factory=eng.Timer)

    @property
    def options(self) -> Options:
        return self.result.options

    def run(self, timer: eng.Timer) -> None:
        self.timer = timer
        file = self.options.file
        assert file is not None
        if not file.is_file():
            raise UsageError(f"file not found: {file}")
        self.result.sha256 = sha256_of(file)
        self.progress("read", 0, 1)
        try:
            with timer.stage("read"):
                table = read_table(file, self.options, catalog_mod.default())
        except FileRejected as exc:
            eng.reject_file(self.result, exc.issues)
            return
        self.result.table, self.result.encoding = table, table.encoding
        self.result.delimiter = table.delimiter
        if self.db is None:
            from csvimport.store.db import connect

            self.db = connect(None)
        if self.options.dry_run:
            self.plan(table)
        else:
            self.recorded_apply(table)

    def plan(self, table: Table) -> CustomerState:
        """Snapshot, validate and plan; the counts and issues land in the result."""
        cat = catalog_mod.default()
        cells = {c.key: table.frame[c.index] for c in table.columns if c.kind == "field"}
        none = pd.Series([], dtype="str")
        ids, orgs = cells.get("external_id", none), cells.get("existing_org_id", none)
        with self.timer.stage("snapshot"):
            state = load_state(self.db, ids, [*orgs, *ids], cells.get("admin_email", none))
        self.progress("validate", 0, len(table.frame))
        with self.timer.stage("validate"):
            rows = validate(table, cat, state.templates)
        self.progress("plan", 0, len(table.frame))
        with self.timer.stage("plan"):
            plan, found = make_plan(rows, state, cat, self.result.sha256)
        eng.finish(self.result, concat_issues([rows.issues, found]), table, rows, plan)
        return state

    def recorded_apply(self, table: Table) -> None:
        """Plan and apply under the customers lock, with a job record (unless batch's)."""
        result, batch = self.result, self.options.source == "batch"
        if not batch:
            jobs.create_job(self.db, org=None, kind="customers", source=self.options.source,
                            file=result.file, sha256=result.sha256, dry_run=False,
                            job_id=result.job_id)  # fmt: skip
        try:
            with _locks(self.db, result.job_id, CUSTOMERS_LOCK) as held:
                if not batch:
                    jobs.start_job(self.db, result.job_id)
                self.apply(self.plan(table), held)
        except Exception as exc:  # busy (exit 4) or a broken store: the record says why
            result.status = Status.FAILED
            result.notes.append(str(exc) or type(exc).__name__)
            raise
        finally:
            if not batch:
                counts = {"rows": result.summary()["rows"], "operations": result.operations}
                error = result.notes[-1] if result.status == Status.FAILED else None
                jobs.finish_job(self.db, result.job_id, result.status.value, counts, error=error)

    def apply(self, state: CustomerState, held: list[str]) -> None:
        plan, result = self.result.plan, self.result
        if result.status == Status.REJECTED or plan is None or plan.operations.empty:
            return
        changed = _changed_orgs(plan.operations, state)
        for org in sorted(changed):
            jobs.acquire_org_lock(self.db, org, result.job_id)
            held.append(org)
        statuses = {str(k): str(v) for k, v in state.customers["status"].items()}
        self.progress("apply", 0, len(plan.operations))
        try:
            with self.timer.stage("apply"):
                apply_customers(self.db, plan, result.job_id, changed, statuses,
                                fail_after=self.fail_after)  # fmt: skip
        except StaleOrBusy:
            raise
        except Exception as exc:  # any failure: nothing was applied (one transaction)
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


def approve(db: Any, external_id: str, source: str = "cli") -> dict[str, Any]:
    """``customers approve ID``: a job of its own, under the customers lock and the org's.

    Raises ``CustomerNotFound`` for an unknown id and ``Refused`` when the customer is not
    ``pending_approval``; either way the job record says why.
    """
    job_id = eng.new_job_id()
    org = get_customer(db, external_id)["target_org_id"]
    jobs.create_job(db, org=org, kind="customers", source=source, dry_run=False,
                    job_id=job_id, options={"approve": external_id})  # fmt: skip
    status, error = "FAILED", None
    try:
        with _locks(db, job_id, CUSTOMERS_LOCK, org):
            jobs.start_job(db, job_id)
            done = approve_pending(db, external_id, job_id)
        status = "COMPLETED"
        return done
    except Exception as exc:
        error = str(exc)
        raise
    finally:
        attached = {"attach_customer": int(status == "COMPLETED")}
        jobs.finish_job(db, job_id, status, {"operations": attached}, error=error)
