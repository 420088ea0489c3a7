"""Digit texts as integer keys: exact, or no key at all.

A wrong key would make two different numbers equal (a number "in use" that is not) or two
equal ones different, so the keys are checked against the texts themselves: equal keys
exactly for equal texts, no key (0) exactly for the texts that are not an optional "+" and
1-15 ASCII digits, and the lookups against Arrow's own ``is_in`` / ``index_in`` on the texts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from csvimport.digitkeys import (
    MAX_DIGITS,
    all_keyed,
    digit_keys,
    first_index,
    found_in,
    picked_keys,
)

TRICKY = [
    "+01",
    "+1",
    "01",
    "1",
    "0",
    "00",
    "+0",
    "+00",
    "",
    "+",
    "++1",
    "1+",
    "+1+2",
    " 1",
    "1 ",
    "٣",
    "+٣",
    "1٣",
    "１",  # fullwidth digit one
    "12a",
    "a12",
    "1\x002",
    "\x00",
    ":",
    "/",  # the bytes just above and below "0".."9"
    "9" * MAX_DIGITS,
    "+" + "9" * MAX_DIGITS,
    "0" * MAX_DIGITS,
    "+" + "0" * MAX_DIGITS,
    "9" * (MAX_DIGITS + 1),
    "+" + "9" * (MAX_DIGITS + 1),
    "1" * 17,
    "1" * 18,
    "+49401237414",
    "49401237414",
    "+4940123741",
    "12345678",
    "123456789",
    "1234567",
    "+1234567",
    "+12345678",
]


def _digits(text: str | None) -> tuple[bool, str] | None:
    """What a key must stand for: the "+" and the digits, or None (no key)."""
    if text is None:
        return None
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not 1 <= len(digits) <= MAX_DIGITS or any(c not in "0123456789" for c in digits):
        return None
    return plus, digits


def _check(texts: list[str | None]) -> None:
    """Keys of ``texts``, whole and as slices: zero exactly where there is no key, equal
    exactly where the texts are."""
    arr = pa.array(texts, type=pa.large_string())
    for start in range(min(3, len(texts))):
        part = arr.slice(start)
        keys = digit_keys(part).tolist()
        meant = [_digits(t) for t in texts[start:]]
        assert [k == 0 for k in keys] == [m is None for m in meant]
        stands = {}
        for key, m in zip(keys, meant, strict=True):
            if m is not None:
                assert stands.setdefault(key, m) == m  # one key, one text
        assert len(stands) == len({m for m in meant if m is not None})  # one text, one key


def test_tricky_texts_have_exact_keys() -> None:
    _check(TRICKY)
    _check(list(reversed(TRICKY)))
    _check([None, "1", None, "01", "", "+1"])


def test_leading_zeros_and_the_plus_make_different_keys() -> None:
    keys = digit_keys(pa.array(["+01", "+1", "01", "1", "001"], type=pa.large_string()))
    assert len(set(keys.tolist())) == 5
    assert keys.all()


def test_no_key_for_what_is_not_plus_and_digits() -> None:
    odd = ["", "+", "++1", "٣", "+٣", "12a", " 1", "1" * 16, "+" + "1" * 16, "1" * 18]
    assert not digit_keys(pa.array(odd, type=pa.large_string())).any()
    assert digit_keys(pa.array([None, None], type=pa.large_string())).tolist() == [0, 0]


def test_the_bytes_of_earlier_texts_do_not_leak_into_a_key() -> None:
    """The 16 bytes read for a short text hold bytes of the texts before it (here digits,
    a "+" and multi-byte characters): only the text's own bytes count."""
    for before in ["٣٣٣٣٣٣٣٣", "9999999999999999", "+++++++", "ü" * 9, ""]:
        keys = digit_keys(pa.array([before, "12", "+3", "1"], type=pa.large_string()))
        alone = [digit_keys(pa.array([t], type=pa.large_string()))[0] for t in ("12", "+3", "1")]
        assert keys[1:].tolist() == alone


def test_empty_and_blank_arrays() -> None:
    assert digit_keys(pa.array([], type=pa.large_string())).tolist() == []
    assert digit_keys(pa.array(["", ""], type=pa.large_string())).tolist() == [0, 0]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(TRICKY),
            st.text(alphabet="0123456789+", max_size=19),
            st.text(alphabet="01+٣a\x00 ", max_size=6),
        ),
        max_size=60,
    )
)
@settings(max_examples=300, deadline=None)
def test_generated_texts_have_exact_keys(texts: list[str | None]) -> None:
    _check(texts)


@given(
    needles=st.lists(st.sampled_from([*TRICKY, None]), max_size=40),
    haystack=st.lists(st.sampled_from(TRICKY[:8] + TRICKY[25:]), max_size=40),
    sparse=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_lookups_match_arrow_on_the_texts(
    needles: list[str | None], haystack: list[str], sparse: bool
) -> None:
    """``found_in`` / ``first_index`` say what ``is_in`` / ``index_in`` say on the texts,
    with the haystack's repeats (the first position counts) and picked needles."""
    text = pa.array(needles, type=pa.large_string())
    hay = pa.array(haystack, type=pa.large_string())
    where = np.array([sparse or i % 3 != 0 for i in range(len(needles))], dtype=bool)
    if sparse:
        where[1:] = False  # fewer than an eighth: the texts are filtered before keying
        where = np.concatenate([where, np.zeros(10 * len(where), dtype=bool)])
        text = pa.concat_arrays([text, pa.array(["1"] * (len(where) - len(text)), text.type)])
    keys = all_keyed(digit_keys(hay))
    if keys is None:
        assert not all(_digits(h) for h in haystack)
        return
    picked = text.filter(pa.array(where))
    at = first_index(picked_keys(text, where), keys)
    expected = pc.index_in(picked, value_set=hay).fill_null(-1).to_pylist()
    assert at.tolist() == expected
    found = found_in(picked_keys(text, where), keys)
    assert found.tolist() == pc.is_in(picked, value_set=hay).to_pylist()


def test_a_haystack_with_a_text_without_key_is_not_keyed() -> None:
    for odd in ["", None, "12a", "٣"]:
        hay = pa.array(["+1", "2", odd], type=pa.large_string())
        assert all_keyed(digit_keys(hay)) is None
    assert all_keyed(digit_keys(pa.array(["+1", "2"], type=pa.large_string()))) is not None


def test_keys_are_small_for_short_texts() -> None:
    """Room above an extension's key for a location's code (``accounting``)."""
    keys = digit_keys(pa.array(["1", "123456", "+" + "9" * 15], type=pa.large_string()))
    assert keys[0] < 16**2
    assert keys[1] < 16**7
    assert keys[2] >= 2**63
