"""JSON text built column by column, for the payloads of a million-operation plan.

Why: a big plan has a payload (the new user's attributes, a modified user's changes) on a
third of its operations. Building one dict per operation and ``json.dumps`` of each cost more
than the whole diff (1M rows: ~9 s and ~2 GB of Python objects). Here every payload is a
string assembled with Arrow kernels over whole columns, the same text ``json.dumps`` writes,
and parsed back only by the few consumers that need a dict (``apply``, tests).

Escaping follows RFC 8259: backslash and quote are escaped column-wise; the rare cell holding
a control character is escaped by ``json.dumps`` itself, so the output is always valid JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.masks import text_buffer, text_bytes

TEXT = pa.large_string()
NULL = pa.scalar(None, TEXT)
_CONTROL = r"[\x00-\x1f]"


def string_literals(values: pa.Array) -> pa.Array:
    """Each text as a JSON string literal (quotes included); nulls stay null."""
    return concat('"', escaped(values), '"')


def escaped(values: pa.Array) -> pa.Array:
    """Each text as the inside of its JSON string literal (no quotes); nulls stay null.

    The column's bytes are scanned once with NumPy: most columns hold no backslash, quote or
    control character at all, and then the Arrow replace and regex kernels are skipped
    (and the text is returned as it is, without a copy)."""
    data = text_bytes(values)  # a chunk of the plan file: its own bytes, not its parent's
    text = values
    if (data == ord("\\")).any():
        text = pc.replace_substring(text, "\\", "\\\\")
    if (data == ord('"')).any():
        text = pc.replace_substring(text, '"', '\\"')
    if not (data < 0x20).any():
        return text
    odd = pc.fill_null(pc.match_substring_regex(values, _CONTROL), False)
    where = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if not len(where):
        return text
    exact = [
        json.dumps(v, ensure_ascii=False)[1:-1] for v in values.take(pa.array(where)).to_pylist()
    ]
    out = text.to_numpy(zero_copy_only=False).astype(object)
    out[where] = exact
    return pa.array(out, type=TEXT)


def boolean_literals(values: pa.Array, prefix: str = "") -> pa.Array:
    """``TRUE``/``FALSE`` text as JSON ``true``/``false`` after ``prefix``; anything else
    (blank) null."""
    true, false = pc.equal(values, "TRUE"), pc.equal(values, "FALSE")
    yes, no = scalar(prefix + "true"), scalar(prefix + "false")
    return pc.if_else(true, yes, pc.if_else(false, no, NULL))


Prefix: TypeAlias = str | pa.Array
# A member after its prefix: one text column (null where the row has no member), or the
# pieces that make it when every row has one (constants as str), joined with the others.
Member: TypeAlias = pa.Array | list[str | pa.Array]
Builder: TypeAlias = Callable[[Prefix], Member]


def string_member(values: pa.Array, prefix: str) -> list[str | pa.Array]:
    """``prefix`` and each text as a JSON string literal, as pieces for ``object_rows`` (for
    a field with a member in every row: no nulls, no blanks)."""
    return [prefix + '"', escaped(values), '"']


def object_rows(
    head: str, tail: str, n: int, fields: Sequence[tuple[str, np.ndarray, Builder]]
) -> tuple[pa.Array, np.ndarray]:
    """Per row, ``head``, its members in field order joined by ``", "``, ``tail``; and
    whether the row has any member.

    Each field is (key, present, build): ``present`` says which rows have the member, and
    ``build(prefix)`` returns the member's value literal after ``prefix`` (the key, with the
    separator unless the member is the row's first), null where not present, or the pieces
    of it when every row has one. The prefix is one string for the whole column except in
    the fields where some rows start and others do not: then it is a column. So the
    separators come out right in one join over all members, with no pass to cut a leading
    separator out. Pieces go into that join as they are, adjacent constants merged: Arrow's
    element-wise join costs per row and argument, so a member joined on its own first was
    most of the cost of a million-row plan's payloads. Not ``null_handling="skip"``: in
    pyarrow 26 it drops the rows whose inputs are all null, shortening the column
    (``test_object_rows_keep_rows_without_members``)."""
    before = np.zeros(n, dtype=bool)
    parts: list[str | pa.Array] = [head]
    for key, present, build in fields:
        plain = json.dumps(key, ensure_ascii=False) + ": "
        first = present & ~before
        prefix: Prefix
        if not first.any():
            prefix = ", " + plain
        elif not (present & before).any():
            prefix = plain
        else:
            prefix = pc.if_else(pa.array(first), scalar(plain), scalar(", " + plain))
        member = build(prefix)
        parts.extend(member if isinstance(member, list) else [member])
        before |= present
    parts.append(tail)
    joined = pc.binary_join_element_wise(
        *_merged(parts), scalar(""), null_handling="replace", null_replacement=""
    )
    return joined, before


def _merged(parts: list[str | pa.Array]) -> list[pa.Scalar | pa.Array]:
    """Join arguments: adjacent constants as one scalar."""
    out: list[pa.Scalar | pa.Array] = []
    pending: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pending.append(part)
            continue
        if pending:
            out.append(scalar("".join(pending)))
            pending = []
        out.append(part)
    if pending:
        out.append(scalar("".join(pending)))
    return out


def null_where(values: pa.Array, null: np.ndarray) -> pa.Array:
    """``values`` made null where ``null``: a fresh array (no offset, no nulls of its own)
    just gets a new validity bitmap over the same bytes; anything else goes through
    ``if_else``, a copy."""
    if values.offset or values.null_count or values.type != TEXT:
        return pc.if_else(pa.array(null), NULL, values)
    validity = pa.array(~null).buffers()[1]
    return pa.LargeStringArray.from_buffers(
        len(values), values.buffers()[1], text_buffer(values), validity
    )


def concat(*parts: str | pa.Array) -> pa.Array:
    """Text columns and constants concatenated row by row (null where a column is null).
    The columns must be of one length; a constant may be given as a column too."""
    args = [scalar(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, scalar(""))


def scalar(text: str | None) -> pa.Scalar:
    """A large-string scalar: Arrow's join kernels want every argument of one type."""
    return pa.scalar(text, TEXT)
