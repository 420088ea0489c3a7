"""One job end to end: read → validate → snapshot → plan → apply → report.

The CLI and the drop-folder worker are two thin callers of ``run``, so a dry run and an apply
share every line up to ``apply``. The engine never prints: it reports progress through the
``progress`` callback and returns a ``Result`` that owns the counts and the exit code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from csvimport import catalog as catalog_mod
from csvimport import planwrite, report
from csvimport.issues import concat_issues
from csvimport.model import (
    CUSTOMER_OPERATION_KINDS,
    OPERATION_KINDS,
    FileRejected,
    Issue,
    Options,
    Plan,
    Result,
    RowCounts,
    Status,
    Table,
    UsageError,
    issues_frame,
)
from csvimport.prefetch import Prefetch
from csvimport.read import read_table, sha256_of

Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    """The default progress callback: says nothing."""


class Checked(Protocol):
    """What the row counting needs of a validation: its cells, one row per record.

    ``validate.Validated`` (users) and the customers' validation both satisfy it.
    """

    @property
    def cells(self) -> pd.DataFrame: ...


def operation_kinds(result: Result) -> tuple[str, ...]:
    """The operation kinds the summary lists for this kind of job (SPEC 7 and 11)."""
    return CUSTOMER_OPERATION_KINDS if result.kind == "customers" else OPERATION_KINDS


class Timer:
    """Wall time per stage, for the summary's ``timings``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


def run(
    options: Options,
    *,
    db: Any = None,
    job_id: str | None = None,
    progress: Progress = _quiet,
    prefetched: Prefetch | None = None,
) -> Result:
    """Run one users job; ``db`` is a SQLAlchemy engine (needed when ``options.org`` is set);
    ``prefetched``: the file's bytes, hash and (a CSV) parse, made since the command started."""
    assert options.file is not None
    result = Result(job_id or new_job_id(), options, Status.COMPLETED, file=options.file.name)
    return run_stages(result, lambda timer: _run(result, options, db, timer, progress, prefetched))


def run_stages(result: Result, stages: Callable[[Timer], None]) -> Result:
    """Run a job's ``stages`` timed, then write its reports (also when a stage raised).

    Shared by every kind of job (users here, customers in ``csvimport.customers``): the
    operation counts start at 0 for the job's kinds, and ``options.report_dir`` always gets
    the reports of SPEC section 7.
    """
    result.operations = dict.fromkeys(operation_kinds(result), 0)
    timer = Timer()
    try:
        stages(timer)
    finally:
        result.timings = timer.timings
        if result.options.report_dir is not None:
            write_reports(result, result.options.report_dir)
    return result


def _run(
    result: Result,
    options: Options,
    db: Any,
    timer: Timer,
    progress: Progress,
    prefetched: Prefetch | None,
) -> None:
    assert options.file is not None
    if not options.file.is_file():
        raise UsageError(f"file not found: {options.file}")
    cat = catalog_mod.default()
    progress("read", 0, 1)
    if prefetched is not None and not prefetched.ready():
        prefetched = None  # not read ahead (too large, unreadable): the read names why
    with ThreadPoolExecutor(max_workers=2) as pool:
        # hashlib and file reads release the GIL: the hash (0.25 s at 220 MB) runs beside
        # the parse, unless the prefetch did them already. An unreadable file still fails
        # on the hash first, as before. So do the imports the later stages need (pandera,
        # and SQLAlchemy with the store for an org job: ~0.3 s of start-up), while the
        # parse mostly runs outside the GIL.
        pool.submit(warm_imports, options.org is not None)
        if prefetched is not None:
            digest = pool.submit(prefetched.sha256)
        else:
            digest = pool.submit(sha256_of, options.file)
        try:
            with timer.stage("read"):
                try:
                    table = read_table(options.file, options, cat, prefetched)
                finally:
                    if prefetched is not None:
                        prefetched.release()
        except FileRejected as exc:
            result.sha256 = digest.result()
            reject_file(result, exc.issues)
            return
        result.sha256 = digest.result()
    result.table, result.encoding, result.delimiter = table, table.encoding, table.delimiter
    from csvimport.validate import validate

    if options.org is None:
        progress("validate", 0, len(table.frame))
        with timer.stage("validate"):
            checked = validate(table, cat, options.mode)
        finish(result, checked.issues, table, checked, None)
        result.notes.append("org checks skipped: no --org given")
        return
    from csvimport import orgjob  # the org path needs the store; kept out of no-org runs

    try:
        orgjob.run_with_org(orgjob.OrgJob(result, table, cat, options, db, timer, progress))
    except FileRejected as exc:  # e.g. org_not_ready (SPEC 11): refused after reading
        result.plan = None
        reject_file(result, exc.issues)


def warm_imports(org: bool) -> None:
    """Import what validation (and, for an org job, the store and planner) will need."""
    import csvimport.validate

    if org:
        import csvimport.orgjob  # noqa: F401


def _reject(result: Result, issues: pd.DataFrame, keep_rows: bool = False) -> None:
    """The file as a whole is refused: exit 3, all counts 0."""
    result.status = Status.REJECTED
    result.rows = RowCounts()
    result.operations = dict.fromkeys(operation_kinds(result), 0)
    if not keep_rows:
        issues = issues[issues["row"].isna()]
    _store_issues(result, issues)


def reject_file(result: Result, issues: list[Issue]) -> None:
    """The file as a whole is refused (``FileRejected``): exit 3, its file-level issues."""
    _reject(result, issues_frame(issues))


def reject_whole_file(result: Result, issues: pd.DataFrame, refusal: Issue) -> None:
    """A plan-level refusal (``too_many_deletes``): row issues may still be listed."""
    _reject(result, concat_issues([issues_frame([refusal]), issues]), keep_rows=True)


def _store_issues(result: Result, issues: pd.DataFrame) -> None:
    """Complete counts; stored issues capped at ``max_issues`` with one warning."""
    result.issue_counts = {str(k): int(v) for k, v in issues["code"].value_counts().items()}
    result.row_errors = report.joined_errors(issues)
    cap = result.options.max_issues
    if len(issues) > cap:
        note = Issue(
            code="issue_limit_reached",
            severity="warning",
            message=f"{len(issues)} issues were found; only the first {cap} are listed. "
            "The counts in summary.json are complete: fix these and validate again.",
        )
        issues = concat_issues([issues_frame([note]), issues.iloc[:cap]])
        result.issue_counts["issue_limit_reached"] = 1
    result.issues = issues.reset_index(drop=True)


def finish(
    result: Result, issues: pd.DataFrame, table: Table, checked: Checked, plan: Plan | None
) -> None:
    """Counts and status once every issue is known."""
    issues = concat_issues([issues_frame(table.issues), issues])
    row_issues = issues[issues["row"].notna()]
    rejected = set(row_issues.loc[row_issues["severity"] == "error", "row"].astype("int64"))
    warned = set(row_issues.loc[row_issues["severity"] == "warning", "row"].astype("int64"))
    total = len(table.frame)
    result.rows = RowCounts(
        total=total,
        valid=total - len(rejected),
        rejected=len(rejected),
        with_warnings=len(warned - rejected),
        unchanged=_unchanged(checked, plan, rejected),
    )
    if plan is not None:
        result.plan = plan
        result.operations = plan.counts(operation_kinds(result))
    result.status = Status.COMPLETED_WITH_ERRORS if rejected else Status.COMPLETED
    _store_issues(result, issues)


def _unchanged(checked: Checked, plan: Plan | None, rejected: set[int]) -> int:
    """Valid rows that yield no operation (known only against an org). Vectorised: a
    million-row plan has millions of operations, too many for Python sets of row numbers."""
    if plan is None:
        return 0
    rows = checked.cells.index.to_numpy(dtype=np.int64)
    touched = plan.operations["row"].dropna().to_numpy(dtype=np.int64)
    bad = np.fromiter(rejected, dtype=np.int64, count=len(rejected))
    return int((~np.isin(rows, touched) & ~np.isin(rows, bad)).sum())


def write_reports(result: Result, directory: Path) -> None:
    """Every report of SPEC section 7 into ``directory`` (also for a rejected file)."""
    directory.mkdir(parents=True, exist_ok=True)
    delimiter = result.delimiter if result.table is not None and result.table.kind == "csv" else ","
    delimiter = delimiter or ","
    report.write_summary(directory / "summary.json", result.summary())
    key_header = report.KEY_HEADERS.get(result.kind, report.ISSUES_HEADER[1])
    report.write_issues(directory / "issues.csv", result.issues, delimiter, key_header)
    rejected_file = result.status == Status.REJECTED
    errors = (
        result.row_errors if result.row_errors is not None else report.joined_errors(result.issues)
    )
    report.write_errors(
        directory / "errors.csv", result.issues, errors, delimiter, rejected_file, key_header
    )
    for stale in ("rejected.csv", "rejected.xlsx", "plan.jsonl"):
        (directory / stale).unlink(missing_ok=True)
    if result.table is not None and not rejected_file:
        report.write_rejected(directory, result.table, errors, delimiter)
    if result.plan is not None and not rejected_file:
        planwrite.write_plan(directory / "plan.jsonl", result.plan)
