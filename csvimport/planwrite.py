"""``plan.jsonl`` (SPEC section 7): the reviewed plan, one JSON operation per line.

Why a module of its own: a million-row plan holds millions of operations, so the writer
assembles lines column-wise (no per-operation Python for the two thirds without a payload),
and that is a concern of its own, apart from the spreadsheet-facing reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import arrowpool, jsontext
from csvimport.beside import in_order
from csvimport.masks import arrow_text, filled, text_bytes, text_offsets
from csvimport.model import Plan

TEXT = jsontext.TEXT
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
        # Two chunks are assembled at a time, on both cores (Arrow kernels), written in order.
        # The chunks' buffers come from an allocator that reuses them (see ``arrowpool``).
        chunks = (ops.iloc[start : start + _CHUNK] for start in range(0, len(ops), _CHUNK))
        with arrowpool.reusing():
            for lines in in_order(_chunk_bytes, chunks):
                fh.write(lines)


def _chunk_bytes(ops: pd.DataFrame) -> pa.Buffer:
    return _utf8(_ended_lines(ops))


def _utf8(lines: pa.Array) -> pa.Buffer:
    """The texts back to back, as one UTF-8 buffer straight from Arrow (no Python string
    per line)."""
    return pa.py_buffer(text_bytes(lines))


def plan_lines(ops: pd.DataFrame) -> list[str]:
    """One JSON line per operation, in plan order (``line_array`` as Python strings)."""
    return [str(line) for line in line_array(ops).to_pylist()]


def line_array(ops: pd.DataFrame) -> pa.Array:
    """One JSON line per operation, in plan order, as an Arrow string array."""
    lines = _ended_lines(ops)
    return pc.utf8_slice_codeunits(lines, 0, -1) if len(lines) else lines


def _ended_lines(ops: pd.DataFrame) -> pa.Array:
    """One JSON line per operation, each ending in a newline, as an Arrow string array.

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
            + "\n"
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
    """``{"op", "row", "email"[, "license"], **payload}`` and a newline per operation, in
    one join over whole columns (each extra pass copies every line's bytes once more).

    A payload ``{"k": ...}`` is merged by writing ``,`` and then the payload with its opening
    brace made a space: its closing brace closes the line. Operations without a payload
    (null, or ``{}``) close the line with ``}`` instead."""
    row = pc.cast(pa.array(ops["row"].astype("int64").to_numpy()), TEXT)
    email = jsontext.escaped(arrow_text(ops["email"].fillna("")))
    carried = filled(pc.greater(pc.binary_length(data), 2), False)
    has = np.asarray(carried.to_numpy(zero_copy_only=False), dtype=bool)  # a payload follows
    return pc.binary_join_element_wise(
        _per_distinct(ops["op"], lambda op: '{"op": ' + _literal(op) + ', "row": '),
        row,
        jsontext.scalar(', "email": "'),
        email,
        _per_distinct(ops["license"], _closing, has),
        _opened(data, has),
        jsontext.scalar("\n"),
        jsontext.scalar(""),
        null_handling="replace",
        null_replacement="",
    )


def _closing(license_id: str, carried: bool) -> str:
    """What follows a line's email: the closing quote, the license member if any, then ``,``
    before a payload (whose opening brace is made a space) or ``}``. One text per license
    and payload-or-not, since the element-wise join costs per line and argument."""
    member = ', "license": ' + _literal(license_id) if license_id else ""
    return '"' + member + ("," if carried else "}")


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _per_distinct(
    values: pd.Series, fn: Callable[..., str], flag: np.ndarray | None = None
) -> pa.Array:
    """``fn`` of each text (missing: ""), computed once per distinct value (operation
    kinds, licenses): a factorize of the column, whatever its dtype (the planner's are
    objects sharing one string per kind), and a take of the few results. With ``flag``,
    ``fn(text, flag)`` once per distinct value and flag."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    names = ["" if pd.isna(v) else str(v) for v in distinct] + [""]
    at = np.where(codes < 0, len(names) - 1, codes)
    if flag is None:
        return pa.array([fn(n) for n in names], type=TEXT).take(pa.array(at))
    texts = [fn(n, f) for f in (False, True) for n in names]
    return pa.array(texts, type=TEXT).take(pa.array(at + len(names) * flag.astype(np.int64)))


def _opened(data: pa.Array, carried: np.ndarray) -> pa.Array:
    """The ``carried`` payloads with their opening brace turned into a space (one copy of the
    bytes, no Arrow kernel), null elsewhere."""
    offsets = text_offsets(data)
    base = int(offsets[0])
    text = text_bytes(data).copy()
    starts = offsets[:-1][carried] - base
    if len(starts) and not (text[starts] == ord("{")).all():
        raise ValueError("a plan payload is not a JSON object")
    text[starts] = ord(" ")
    return pa.LargeStringArray.from_buffers(
        len(data),
        pa.py_buffer(offsets - base),
        pa.py_buffer(text),
        pa.array(carried).buffers()[1],
    )


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
