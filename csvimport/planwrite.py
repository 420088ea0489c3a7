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
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import jsontext
from csvimport.masks import arrow_text
from csvimport.model import Plan

TEXT = jsontext.TEXT
_EMPTY = pa.scalar("", TEXT)
_CHUNK = 100_000


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
    ops = plan.operations
    with path.open("wb") as fh:
        fh.write((json.dumps({"plan": head}, ensure_ascii=False) + "\n").encode("utf-8"))
        # Chunk by chunk: the lines of a million-row plan take as much memory as the plan.
        for start in range(0, len(ops), _CHUNK):
            fh.write(_utf8_lines(line_array(ops.iloc[start : start + _CHUNK])))


def _utf8_lines(lines: pa.Array) -> pa.Buffer:
    """The lines, each ending in a newline, as one UTF-8 buffer straight from Arrow (no
    Python string per line)."""
    ended = jsontext.concat(lines, "\n")
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int64)
    first, last = int(offsets[ended.offset]), int(offsets[ended.offset + len(ended)])
    data: pa.Buffer = ended.buffers()[2]
    return data.slice(first, last - first)


def plan_lines(ops: pd.DataFrame) -> list[str]:
    """One JSON line per operation, in plan order (``line_array`` as Python strings)."""
    return [str(line) for line in line_array(ops).to_pylist()]


def line_array(ops: pd.DataFrame) -> pa.Array:
    """One JSON line per operation, in plan order, as an Arrow string array.

    A users plan (payloads as JSON text, see ``plan``) is assembled column by column, with no
    per-operation Python; a plan with dict payloads (customers) or without row numbers goes
    through ``json.dumps`` per operation. Same JSON either way
    (``test_plan_lines_match_json_dumps``)."""
    if ops.empty:
        return pa.array([], type=TEXT)
    data = _text_payloads(ops)
    if data is not None:
        return _assembled(ops, data)
    records = ops.to_dict("records")
    return pa.array(
        [
            json.dumps(operation_dict({str(k): v for k, v in op.items()}), ensure_ascii=False)
            for op in records
        ],
        type=TEXT,
    )


def _text_payloads(ops: pd.DataFrame) -> pa.Array | None:
    """The ``data`` column as Arrow text when every payload is JSON text or none, and the
    plan has row numbers and no external ids; else None (the per-operation path)."""
    if "external_id" in ops.columns or ops["row"].isna().any():
        return None
    try:
        return arrow_text(ops["data"])
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # dict payloads
        return None


def _assembled(ops: pd.DataFrame, data: pa.Array) -> pa.Array:
    """``{"op", "row", "email"[, "license"], **payload}`` per operation, from columns."""
    row = pc.cast(pa.array(ops["row"].astype("int64").to_numpy()), TEXT)
    head = jsontext.concat(
        '{"op": ',
        jsontext.coded_literals(arrow_text(ops["op"])),
        ', "row": ',
        row,
        ', "email": ',
        jsontext.string_literals(arrow_text(ops["email"].fillna(""))),
    )
    lic = pc.fill_null(arrow_text(ops["license"].where(ops["license"].notna(), "")), "")
    licensed = pc.if_else(
        pc.equal(lic, ""), _EMPTY, jsontext.concat(', "license": ', jsontext.coded_literals(lic))
    )
    inner = pc.utf8_slice_codeunits(pc.fill_null(data, "{}"), 1, -1)
    payload = pc.if_else(pc.equal(inner, ""), _EMPTY, jsontext.concat(", ", inner))
    return jsontext.concat(head, licensed, payload, "}")


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
    if isinstance(data, str) and data:  # a users plan's payload: JSON text
        data = json.loads(data)
    if isinstance(data, dict):
        out.update(data)
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None
