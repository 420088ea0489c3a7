"""``plan.jsonl`` (SPEC section 7): the reviewed plan, one JSON operation per line.

Why a module of its own: a million-row plan holds millions of operations, so the writer
assembles lines column-wise (no per-operation Python for the two thirds without a payload),
and that is a concern of its own, apart from the spreadsheet-facing reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csvimport.model import Plan


def write_plan(path: Path, plan: Plan) -> None:
    """``plan.jsonl``: a header line, then one operation per line (SPEC section 7)."""
    # A plan without an org (a customers file, SPEC 11) has no mode either.
    mode = plan.mode if plan.org is not None else None
    head = {
        "org": plan.org,
        "mode": mode,
        "state_version": plan.state_version,
        "sha256": plan.sha256,
    }
    lines = plan_lines(plan.operations)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"plan": head}, ensure_ascii=False) + "\n")
        for start in range(0, len(lines), 100_000):
            fh.write("".join(line + "\n" for line in lines[start : start + 100_000]))


def plan_lines(ops: pd.DataFrame) -> list[str]:
    """One JSON line per operation, in plan order.

    Operations without a payload (license assignments and removals, deletes: two thirds of a
    big plan) are assembled as strings column by column; the others go through ``json.dumps``.
    Same JSON either way (``test_plan_lines_match_json_dumps``)."""
    lines = np.empty(len(ops), dtype=object)
    if "external_id" in ops.columns or ops.empty:
        simple = np.zeros(len(ops), dtype=bool)
    else:
        simple = (ops["data"].isna() & ops["row"].notna()).to_numpy()
    if simple.any():
        lines[simple] = _simple_lines(ops[simple]).to_numpy()
    records = ops[~simple].to_dict("records")
    lines[~simple] = [
        json.dumps(operation_dict({str(k): v for k, v in op.items()}), ensure_ascii=False)
        for op in records
    ]
    return list(lines)


def _json_text(values: pd.Series) -> pd.Series:
    """JSON string literals for text without control characters (emails, license ids)."""
    text = values.astype("str").str.replace("\\", "\\\\", regex=False)
    return '"' + text.str.replace('"', '\\"', regex=False) + '"'


def _simple_lines(ops: pd.DataFrame) -> pd.Series:
    head = (
        '{"op": '
        + _json_text(ops["op"])
        + ', "row": '
        + ops["row"].astype("int64").astype("str")
        + ', "email": '
        + _json_text(ops["email"].fillna(""))
    )
    licensed = ops["license"].fillna("").astype("str")
    tail = (', "license": ' + _json_text(licensed) + "}").where(licensed != "", "}")
    return head + tail


def operation_dict(op: dict[str, Any]) -> dict[str, Any]:
    """One plan line: ``op``, ``row``, ``email`` and the op's own payload."""
    out: dict[str, Any] = {"op": op["op"], "row": _int_or_none(op["row"]), "email": op["email"]}
    for key in ("external_id",):
        if op.get(key):
            out[key] = op[key]
    license_id = op.get("license")
    if isinstance(license_id, str) and license_id:  # a missing license may arrive as NaN
        out["license"] = license_id
    data = op.get("data")
    if isinstance(data, dict):
        out.update(data)
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None
