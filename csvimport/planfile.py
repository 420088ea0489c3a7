"""Reviewed plans: ``apply --plan D/plan.jsonl`` applies exactly what a dry run wrote.

The first line carries the org, mode, state version and file hash; the org must still be at
that version (exit 4 otherwise, also when the plan was applied already, since applying bumps
the version). The operations are read back into the plan frame ``apply`` takes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from csvimport import engine as eng
from csvimport.model import OPERATION_KINDS, PLAN_COLUMNS, Options, Plan, Result, Status, UsageError

PAYLOAD_KEYS = ("attributes", "changes")


def read_plan(path: Path) -> Plan:
    """Parse ``plan.jsonl``; a malformed file is a usage error naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read plan {path}: {exc}") from exc
    if not lines:
        raise UsageError(f"plan {path} is empty")
    head = _json(lines[0], path, 1).get("plan")
    if not isinstance(head, dict) or not head.get("org"):
        raise UsageError(f'{path}: line 1 must be {{"plan": {{"org": …}}}}')
    records = [
        _operation(_json(text, path, n), path, n)
        for n, text in enumerate(lines[1:], 2)
        if text.strip()
    ]
    ops = pd.DataFrame.from_records(records, columns=PLAN_COLUMNS)
    return Plan(
        org=head["org"],
        mode=head.get("mode", "add-only"),
        state_version=head.get("state_version"),
        sha256=head.get("sha256"),
        operations=ops,
    )


def _json(text: str, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{path}: line {number} is not a JSON object")
    return value


def _operation(line: dict[str, Any], path: Path, number: int) -> dict[str, Any]:
    if line.get("op") not in OPERATION_KINDS:
        raise UsageError(f"{path}: line {number}: unknown operation {line.get('op')!r}")
    data = {k: line[k] for k in PAYLOAD_KEYS if k in line}
    return {
        "op": line["op"],
        "row": line.get("row"),
        "email": line.get("email", ""),
        "license": line.get("license"),
        "data": data,
    }


def apply_reviewed(db: Any, path: Path, report_dir: Path | None) -> Result:
    """Apply a reviewed plan under the org lock; reports as for any job."""
    from csvimport.apply import apply_plan
    from csvimport.store import jobs
    from csvimport.store.snapshot import refresh_cache

    plan = read_plan(path)
    assert plan.org is not None
    options = Options(file=path, org=plan.org, mode=plan.mode, dry_run=False, report_dir=report_dir)
    result = Result(eng.new_job_id(), options, Status.COMPLETED, file=path.name, sha256=plan.sha256)
    result.plan, result.operations = plan, plan.counts()
    jobs.create_job(
        db,
        org=plan.org,
        file=path.name,
        sha256=plan.sha256,
        mode=plan.mode,
        dry_run=False,
        job_id=result.job_id,
    )
    jobs.acquire_org_lock(db, plan.org, result.job_id)
    try:
        result.state_version = apply_plan(db, plan, result.job_id)
    except Exception as exc:
        result.status = Status.FAILED
        result.notes.append(f"the job failed and nothing was applied: {exc}")
        if type(exc).__name__ == "StaleOrBusy":
            jobs.finish_job(db, result.job_id, "FAILED", error=str(exc))
            raise
    finally:
        jobs.release_org_lock(db, plan.org, result.job_id)
    jobs.finish_job(
        db,
        result.job_id,
        result.status.value,
        {"operations": result.operations},
        state_version=result.state_version,
    )
    if result.status != Status.FAILED and result.state_version != plan.state_version:
        refresh_cache(db, plan.org)  # the next dry run of the org reads one blob
    if report_dir is not None:
        eng.write_reports(result, report_dir)
    return result
