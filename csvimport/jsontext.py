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
from collections.abc import Sequence

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


def members(keys: Sequence[str], values: Sequence[pa.Array]) -> pa.Array:
    """Per row, ``"key": value`` for every non-null value, joined by ``", "`` (null when the
    row has none). ``values`` are JSON literals already, of equal length.

    Each present member carries its own leading ``", "`` and all are joined in one kernel call
    (nulls as ""), then the first separator is cut: one pass over the bytes. Not
    ``null_handling="skip"``: in pyarrow 26 it drops the rows whose inputs are all null,
    shortening the column (``test_members_keep_rows_whose_values_are_all_null``)."""
    if not keys:
        raise ValueError("members() needs at least one key")
    parts = [
        pc.binary_join_element_wise(_s(", " + json.dumps(k, ensure_ascii=False) + ": "), v, _s(""))
        for k, v in zip(keys, values, strict=True)
    ]
    joined = pc.binary_join_element_wise(
        *parts, _s(""), null_handling="replace", null_replacement=""
    )
    return pc.if_else(pc.equal(joined, ""), _s(None), pc.utf8_slice_codeunits(joined, 2))


def concat(*parts: str | pa.Array) -> pa.Array:
    """Text columns and constants concatenated row by row (null where a column is null)."""
    args = [_s(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, _s(""))


def _s(text: str | None) -> pa.Scalar:
    """A large-string scalar: Arrow's join kernels want every argument of one type."""
    return pa.scalar(text, TEXT)
