"""Digit texts as integer keys, so that big hash lookups hash integers instead of strings.

The org rules look a million phone numbers and extensions up among a million or more others
(``is_in`` / ``index_in``). Arrow builds a hash set of the value set for each lookup, and for
text that costs a cache miss per inserted string plus byte compares; 64-bit integers hash
several times faster. Phone numbers (stored compact: "+" and digits) and extensions (digits)
map to such integers *exactly*: the key of a text of an optional "+" and 1-15 ASCII digits
is injective, so two texts are equal exactly when their keys are.

The key holds the digits as nibbles (the last one lowest) and above them a marker that no
digit can take (``0xA``, or ``0xB`` for a "+"): the marker's place gives the number of
digits (so "01" and "1" differ) and its value the "+". No key is 0, which stands for any
other text (blank, longer, a letter, "٣", null): such a needle cannot equal a digit text.
A haystack that holds any other text is looked up as text (callers fall back): its keys
would no longer tell which texts are equal.

The keys are computed on the Arrow offsets and data buffers in a few numpy passes (three
aligned 8-byte loads per text, SWAR digit checks): building them with Arrow's string
kernels cost about what the integer hashing saves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.masks import first_bytes, text_bytes, text_offsets

MAX_DIGITS = 15  # digits + marker: the 16 nibbles of a uint64
_PLUS = 0x2B
_ONES = 0x0101010101010101


def _low_bytes(count: int) -> int:
    """A mask of the lowest ``count`` (0-8) bytes of a word."""
    return (1 << (8 * count)) - 1


# Indexed by the number of digits (0-15; 16 for a text that does not fit, masked anyway):
# which bytes of the window's two (big-endian) words are digits.
_FIRST_DIGITS = np.array([_low_bytes(max(d - 8, 0)) for d in range(17)], dtype=np.uint64)
_LAST_DIGITS = np.array([_low_bytes(min(d, 8)) for d in range(17)], dtype=np.uint64)


def digit_keys(values: pa.Array) -> np.ndarray:
    """Per text of a ``large_string`` array, its key (uint64); 0 where it is not an
    optional "+" followed by 1-15 ASCII digits (blank, null, longer, any other character).

    The key is below ``16 ** (digits + 1)``: short texts have small keys, so that a code
    (e.g. of a location) fits above them."""
    if not len(values):
        return np.zeros(0, dtype=np.uint64)
    offsets = text_offsets(values)
    size = offsets[1:] - offsets[:-1]
    first, last = _window(values, offsets)
    plus = first_bytes(values) == _PLUS
    digits = size - plus
    fits = (digits - 1).view(np.uint64) < MAX_DIGITS  # 1-15 digits
    if values.null_count:
        fits &= np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    digits = np.minimum(digits.view(np.uint64), np.uint64(16))
    fits &= _digit_nibbles(first, _FIRST_DIGITS.take(digits))
    fits &= _digit_nibbles(last, _LAST_DIGITS.take(digits))
    first <<= np.uint64(32)
    first |= last
    marker = plus.astype(np.uint64)
    marker += np.uint64(0xA)
    marker <<= digits << np.uint64(2)
    first |= marker
    first[~fits] = 0
    return first


def _window(values: pa.Array, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 16 bytes that end where each text ends, as two big-endian words (bytes of earlier
    texts, or zero padding, where the text is shorter): the text's last byte is the lowest
    of the second. Built from three aligned 8-byte loads per text (``take`` on aligned
    words is several times faster than indexing a strided, unaligned view of the bytes)."""
    data = text_bytes(values)
    padded = np.zeros((len(data) + 32) // 8 * 8, dtype=np.uint8)  # 16 zero bytes first
    padded[16 : 16 + len(data)] = data
    words = padded.view(">u8").astype(np.uint64)
    ends = offsets[1:] - offsets[0]  # in ``data``: the window starts there in ``padded``
    at = ends >> 3
    shift = ((ends << 3) & 63).view(np.uint64)
    one, two, three = words.take(at), words[1:].take(at), words[2:].take(at)
    return _funnel(one, two, shift), _funnel(two, three, shift)


def _funnel(high: np.ndarray, low: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The 8 bytes from byte ``shift / 8`` of the 16 bytes ``high`` then ``low`` (in place
    in ``high``; a shift by 64 is undefined, hence ``low`` shifted in two steps)."""
    high <<= shift
    carry = low >> np.uint64(1)
    carry >>= np.uint64(63) - shift
    high |= carry
    return high


def _digit_nibbles(word: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """Packs the bytes of ``digits`` of each word, as digit values, in its lowest 8 nibbles
    (in place; the other bytes count as 0), and tells whether they all were ASCII digits
    (SWAR: a byte minus "0" is a digit when adding 0x76 leaves it below 0x80; a carry out
    of a byte only follows a byte that failed)."""
    word ^= np.uint64(_ONES * 0x30)
    word &= digits
    bad = word + np.uint64(_ONES * 0x76)
    bad |= word
    bad &= np.uint64(_ONES * 0x80)
    for step, keep in ((4, 0x00FF00FF00FF00FF), (8, 0x0000FFFF0000FFFF), (16, 0xFFFFFFFF)):
        word |= word >> np.uint64(step)
        word &= np.uint64(keep)
    ok: np.ndarray = bad == 0
    return ok


def picked_keys(text: pa.Array, where: np.ndarray) -> np.ndarray:
    """The keys of the entries of ``where``: built on the whole array, then picked, which
    is cheaper than filtering the strings first, unless only a few are picked."""
    if np.count_nonzero(where) * 8 < len(where):
        return digit_keys(text.filter(pa.array(where)))
    keys: np.ndarray = digit_keys(text)[where]
    return keys


def all_keyed(keys: np.ndarray) -> np.ndarray | None:
    """``keys`` when every text had one (a haystack that can be looked up by key), else None:
    the caller looks the texts up as text."""
    return keys if keys.all() else None


def found_in(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """Per needle key, whether ``haystack`` holds it: pandas' hash (khash) of integers,
    ~3x faster here than Arrow's ``is_in`` on the same integers (50 ms for 0.7M keys in
    1.4M), which in turn is not much faster than Arrow's on the texts."""
    found: np.ndarray = pd.Index(needles).isin(haystack)
    return found


def first_index(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """Per needle key, the position of the first equal key of ``haystack`` (-1 where none):
    ``pyarrow.compute.index_in`` on the texts, when every haystack text has a key (no key
    is 0, so a needle without one finds nothing). Positions are looked for only for the
    needles found, among the haystack's keys that some found needle holds: usually few."""
    at = np.full(len(needles), -1, dtype=np.int64)
    found = found_in(needles, haystack)
    if not found.any():
        return at
    wanted = needles[found]
    holders = np.flatnonzero(found_in(haystack, wanted))
    where = pc.index_in(pa.array(wanted), value_set=pa.array(haystack[holders]))
    at[found] = holders[np.asarray(where.to_numpy(zero_copy_only=False), dtype=np.int64)]
    return at
