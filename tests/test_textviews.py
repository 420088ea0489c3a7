"""Views into several text arrays: the same values as gathering copies, nothing copied."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from csvimport import textviews

LONG = st.text(min_size=13, max_size=40).filter(lambda t: len(t.encode("utf-8")) > 12)


@given(
    st.lists(st.lists(LONG, max_size=6), min_size=1, max_size=4),
    st.data(),
)
def test_views_read_as_the_copied_gather(parts_text: list[list[str]], data: st.DataObject) -> None:
    """Whatever the parts (sliced ones too, sharing a parent's buffer) and however the
    values are picked (repeated, out of order, none), the views read as a copying take."""
    parts = []
    for texts in parts_text:
        whole = pa.array(["x" * 20, *texts, "y" * 20], type=pa.large_string())
        parts.append(whole.slice(1, len(texts)))
    total = sum(len(p) for p in parts)
    source = np.array(
        data.draw(st.lists(st.integers(-1, total - 1), max_size=30)) if total else [],
        dtype=np.int64,
    )
    got = textviews.gathered(parts, source)
    assert got is not None
    got.validate(full=True)
    flat = [v for texts in parts_text for v in texts]
    assert got.to_pylist() == [flat[i] if i >= 0 else None for i in source]
    assert got.cast(pa.large_string()).to_pylist() == got.to_pylist()


def test_short_values_are_left_to_a_copy() -> None:
    parts = [pa.array(["a much longer value here", "short"], type=pa.large_string())]
    assert textviews.gathered(parts, np.array([0, -1])) is not None
    assert textviews.gathered(parts, np.array([1])) is None  # 5 bytes: an inline view


def test_views_hold_no_copy_of_the_bytes() -> None:
    part = pa.array(["p" * 100] * 1000, type=pa.large_string())
    got = textviews.gathered([part], np.arange(1000))
    assert got is not None
    assert got.buffers()[2].address == part.buffers()[2].address
