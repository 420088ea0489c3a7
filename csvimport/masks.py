"""Masks: over nullable boolean columns (TRUE / FALSE / blank = <NA>), and membership of text.

One place for each idiom: ``flag == True`` on a nullable column yields <NA> for blanks, and
pandas' ``isin`` on Arrow-backed text is slow for large candidate sets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc


def is_true(flag: pd.Series) -> pd.Series:
    """True where the cell said TRUE; blank and FALSE are False."""
    return flag.eq(True).fillna(False).astype(bool)


def is_false(flag: pd.Series) -> pd.Series:
    """True where the cell said FALSE; blank and TRUE are False."""
    return flag.eq(False).fillna(False).astype(bool)


def member(values: pd.Series | pd.Index, pool: Iterable[str] | pd.Series | pd.Index) -> np.ndarray:
    """``values.isin(pool)`` for text, through Arrow's hash kernel.

    pandas' ``isin`` on Arrow-backed strings first boxes every candidate of ``pool`` in a
    Python scalar: half a second per call at 100k candidates, which the planner makes a dozen
    times over a million-row file.
    """
    haystack = arrow_text(pool)
    if len(haystack) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    found = pc.is_in(arrow_text(values), value_set=haystack)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def arrow_text(
    values: Iterable[str] | pd.Series | pd.Index | pyarrow.Array | pyarrow.ChunkedArray,
) -> pyarrow.Array:
    """Any text column or collection as one Arrow ``large_string`` array (missing as null).

    Arrow-backed pandas text converts without a Python object per cell, and a column that is
    one chunk already is not copied: the planner and the JSON writer call this on every
    column of a million-row file."""
    if isinstance(values, pyarrow.Array | pyarrow.ChunkedArray):
        arr = values
    elif isinstance(values, pd.Series | pd.Index) and _arrow_backed_text(values.dtype):
        arr = pyarrow.array(values.array)
    elif isinstance(values, pd.Series | pd.Index):
        # Objects must be text (or missing): anything else, e.g. a dict, raises ArrowTypeError.
        arr = pyarrow.array(
            np.asarray(values, dtype=object), type=pyarrow.large_string(), from_pandas=True
        )
    else:
        arr = pyarrow.array(list(values), type=pyarrow.large_string())
    if isinstance(arr, pyarrow.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr.cast(pyarrow.large_string())


def filled(values: pyarrow.Array, fill: bool) -> pyarrow.Array:
    """A boolean Arrow array with its nulls made ``fill``, through bitmap kernels:
    ``pc.fill_null`` goes value by value once there are nulls (7.6 ms per million values,
    against 0.13 ms), and the planner does it a few times per field of a million-row
    file."""
    if fill:
        return pc.or_kleene(values, pc.is_null(values))
    return pc.and_kleene(values, pc.is_valid(values))


def _arrow_backed_text(dtype: object) -> bool:
    """pandas text held in Arrow: the ``str`` dtype, or Arrow text of any layout (the plan's
    payloads are ``string_view``, see ``textviews``)."""
    if isinstance(dtype, pd.StringDtype):
        return True
    if not isinstance(dtype, pd.ArrowDtype):
        return False
    kind = dtype.pyarrow_dtype
    return bool(
        pyarrow.types.is_string(kind)
        or pyarrow.types.is_large_string(kind)
        or pyarrow.types.is_string_view(kind)
    )


def byte_bits(values: pyarrow.Array, classes: np.ndarray) -> np.ndarray:
    """Per cell, the OR of ``classes[byte]`` over its bytes (0 for an empty cell): which
    byte classes occur in it, in one lookup and one ``reduceat`` over the data buffer.

    Regex-free tests for simple patterns, several times cheaper than RE2 run cell by cell.
    ASCII classes count characters exactly: their bytes never occur inside a multi-byte
    UTF-8 character."""
    offsets = text_offsets(values)
    out = np.zeros(len(values), dtype=np.uint8)
    data = values.buffers()[2]
    if len(values) == 0 or data is None or offsets[-1] == offsets[0]:
        return out
    hit = classes[np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]]
    filled = offsets[1:] > offsets[:-1]
    # each cell's segment runs to the next non-empty cell's start: empty cells add nothing
    out[filled] = np.bitwise_or.reduceat(hit, offsets[:-1][filled] - offsets[0])
    return out


def filled_cells(values: pyarrow.Array) -> np.ndarray:
    """Cells holding any text (not "" and not missing), from the offsets alone: no
    million-entry array of lengths is made to be compared with 0 (``byte_lengths``), so no
    fresh 8 MB buffer is faulted in for each column tested."""
    offsets = text_offsets(values)
    return np.asarray(offsets[1:] != offsets[:-1])


def byte_lengths(values: pyarrow.Array) -> np.ndarray:
    offsets = text_offsets(values)
    return np.asarray(offsets[1:] - offsets[:-1])


def first_bytes(values: pyarrow.Array) -> np.ndarray:
    """Each cell's first byte (0 for an empty cell)."""
    offsets = text_offsets(values)
    out = np.zeros(len(values), dtype=np.uint8)
    filled = offsets[1:] > offsets[:-1]
    data = values.buffers()[2]
    if data is not None and filled.any():
        out[filled] = np.frombuffer(data, dtype=np.uint8)[offsets[:-1][filled]]
    return out


def fullmatch_where(values: pyarrow.Array, where: np.ndarray, pattern: str) -> np.ndarray:
    """``pattern`` fully matched, tried only on the cells of ``where`` (False elsewhere)."""
    out = np.zeros(len(values), dtype=bool)
    if where.any():
        found = pc.match_substring_regex(values.filter(pyarrow.array(where)), f"^(?:{pattern})$")
        out[where] = np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    return out


def text_offsets(values: pyarrow.Array) -> np.ndarray:
    """The value offsets of a ``large_string`` array as numpy (no copy); for a slice, its
    own ``len + 1`` offsets, into the buffer it shares with its parent."""
    buf = values.buffers()[1]
    start = values.offset
    return np.frombuffer(buf, dtype=np.int64)[start : start + len(values) + 1]


def text_bytes(values: pyarrow.Array) -> np.ndarray:
    """The UTF-8 bytes of exactly these texts (no copy): a slice's own, not its parent's
    whole buffer."""
    data = values.buffers()[2]
    if len(values) == 0 or data is None:
        return np.zeros(0, dtype=np.uint8)
    offsets = text_offsets(values)
    return np.frombuffer(data, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]


def text_buffer(values: pyarrow.Array) -> pyarrow.Buffer:
    """The data buffer of a string array, an empty one when Arrow has none (no text at all):
    what ``LargeStringArray.from_buffers`` needs."""
    data = values.buffers()[2]
    return data if data is not None else pyarrow.py_buffer(b"")
