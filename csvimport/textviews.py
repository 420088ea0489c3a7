"""A text column that points into other text arrays instead of copying their bytes.

Why: the plan's ``data`` column holds the payloads of the operations that carry one, in plan
order, picked from the candidate payloads built before the rules ran. At a million rows,
gathering them copied ~0.25 GB of JSON while the candidates were still alive: the job's
memory peak. An Arrow ``string_view`` array is a 16-byte view per value (length, first four
bytes, buffer number, offset) over any number of byte buffers, so the column can be made of
views into the candidates' own buffers (36 MB for 2.2M operations) instead of a second copy
of their bytes. The plan writer turns it into plain text one chunk at a time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from csvimport.masks import text_buffer, text_offsets

_INLINE = 12  # Arrow keeps a value of up to 12 bytes inside its view: not built here
_MAX_OFFSET = 2**31 - 1  # a view's buffer offset is a signed 32-bit integer


def gathered(parts: list[pa.Array], source: np.ndarray) -> pa.Array | None:
    """At position ``i``, value ``source[i]`` of the ``parts`` taken as one sequence (null
    where ``source[i] < 0``), as a ``string_view`` array over the parts' own buffers.

    None when some picked value is short enough to be inlined in its view, or lies beyond a
    32-bit offset in its buffer: the caller then gathers by copying."""
    length, offset, buffer = _values_of(parts)
    has = source >= 0
    picked = source[has]
    if (length[picked] <= _INLINE).any() or (offset[picked] > _MAX_OFFSET).any():
        return None
    views = np.zeros((len(source), 4), dtype=np.int32)
    views[has, 0] = length[picked]
    views[has, 1] = _prefixes(parts, offset[picked], buffer[picked])
    views[has, 2] = buffer[picked]
    views[has, 3] = offset[picked]
    data = [text_buffer(part) for part in parts]
    validity = pa.array(has).buffers()[1]
    return pa.Array.from_buffers(
        pa.string_view(), len(source), [validity, pa.py_buffer(views), *data]
    )


def _values_of(parts: list[pa.Array]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per value of all parts: its byte length, its offset in its part's data buffer, and
    the number of that part."""
    lengths, offsets, buffers = [], [], []
    for number, part in enumerate(parts):
        bounds = text_offsets(part)
        lengths.append(np.diff(bounds))
        offsets.append(bounds[:-1])
        buffers.append(np.full(len(part), number, dtype=np.int64))
    if not lengths:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(lengths), np.concatenate(offsets), np.concatenate(buffers)


def _prefixes(parts: list[pa.Array], offset: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """The first four bytes of each value, as the int32 a view stores them in: one gather
    per part from an int32 view of its bytes at every byte offset (stride 1, unaligned
    reads), where a byte at a time cost four passes over the picked values. Every value
    here is longer than ``_INLINE``, so its four bytes lie within the buffer."""
    out = np.zeros(len(offset), dtype=np.int32)
    for number, part in enumerate(parts):
        mine = buffer == number
        if not mine.any():
            continue
        data = text_buffer(part)
        words = np.ndarray(
            shape=(max(data.size - 3, 0),), dtype=np.int32, buffer=data, strides=(1,)
        )
        out[mine] = words[offset[mine]]
    return out
