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
    data = _data_bytes(values)
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


def coded_literals(values: pa.Array) -> pa.Array:
    """``string_literals`` for a column of few distinct values (operation kinds, license
    ids): escaped once per distinct value, then spread by the dictionary's indices."""
    coded = pc.dictionary_encode(values)
    return string_literals(coded.dictionary.cast(TEXT)).take(coded.indices)


def _data_bytes(values: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of exactly these texts. A slice of a bigger array (a chunk of the
    plan file) shares its parent's data buffer: scanning the whole buffer per chunk made
    writing a 2M-operation plan scan the emails ~20 times over."""
    buffer = values.buffers()[2]
    if buffer is None or len(values) == 0:
        return np.zeros(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    offsets = np.frombuffer(values.buffers()[1], dtype=width)
    first, last = int(offsets[values.offset]), int(offsets[values.offset + len(values)])
    return np.frombuffer(buffer, dtype=np.uint8)[first:last]


def boolean_literals(values: pa.Array) -> pa.Array:
    """``TRUE``/``FALSE`` text as JSON ``true``/``false``; anything else (blank) null."""
    true, false = pc.equal(values, "TRUE"), pc.equal(values, "FALSE")
    return pc.if_else(true, _s("true"), pc.if_else(false, _s("false"), _s(None)))


Prefix: TypeAlias = str | pa.Array
Builder: TypeAlias = Callable[[Prefix], pa.Array]


def members(keys: Sequence[str], values: Sequence[pa.Array]) -> pa.Array:
    """Per row, ``"key": value`` for every non-null value, joined by ``", "`` (null when the
    row has none). ``values`` are JSON literals already, of equal length."""
    if not keys:
        raise ValueError("members() needs at least one key")
    built = [
        (key, pc.is_valid(v).to_numpy(zero_copy_only=False), _prefixed(v))
        for key, v in zip(keys, values, strict=True)
    ]
    body, present = object_rows("", "", len(values[0]), built)
    return without_nulls_where(body, ~present)


def _prefixed(value: pa.Array) -> Builder:
    return lambda prefix: concat(prefix, value)


def object_rows(
    head: str, tail: str, n: int, fields: Sequence[tuple[str, np.ndarray, Builder]]
) -> tuple[pa.Array, np.ndarray]:
    """Per row, ``head``, its members in field order joined by ``", "``, ``tail``; and
    whether the row has any member.

    Each field is (key, present, build): ``present`` says which rows have the member, and
    ``build(prefix)`` returns the member's value literal after ``prefix`` (the key, with the
    separator unless the member is the row's first), null where not present. The prefix is
    one string for the whole column except in the fields where some rows start and others
    do not: then it is a column. So the separators come out right in one join over all
    members, with no pass to cut a leading separator out. Not ``null_handling="skip"``: in
    pyarrow 26 it drops the rows whose inputs are all null, shortening the column
    (``test_members_keep_rows_whose_values_are_all_null``)."""
    before = np.zeros(n, dtype=bool)
    parts = []
    for key, present, build in fields:
        plain = json.dumps(key, ensure_ascii=False) + ": "
        first = present & ~before
        prefix: Prefix
        if not first.any():
            prefix = ", " + plain
        elif not (present & before).any():
            prefix = plain
        else:
            prefix = pc.if_else(pa.array(first), _s(plain), _s(", " + plain))
        parts.append(build(prefix))
        before |= present
    joined = pc.binary_join_element_wise(
        _s(head), *parts, _s(tail), _s(""), null_handling="replace", null_replacement=""
    )
    return joined, before


def _require_fresh(values: pa.Array) -> None:
    if values.offset or values.null_count or values.type != TEXT:
        raise ValueError("expected a fresh large_string array: no offset, no nulls")


def without_nulls_where(values: pa.Array, null: np.ndarray) -> pa.Array:
    """``values`` (a fresh array: no offset, no nulls) with the rows of ``null`` made null:
    a new validity bitmap, the bytes shared."""
    _require_fresh(values)
    validity = pa.array(~null).buffers()[1]
    data = values.buffers()[2] or pa.py_buffer(b"")
    return pa.LargeStringArray.from_buffers(len(values), values.buffers()[1], data, validity)


def concat(*parts: str | pa.Array) -> pa.Array:
    """Text columns and constants concatenated row by row (null where a column is null).
    The columns must be of one length; a constant may be given as a column too."""
    args = [_s(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, _s(""))


def _s(text: str | None) -> pa.Scalar:
    """A large-string scalar: Arrow's join kernels want every argument of one type."""
    return pa.scalar(text, TEXT)
