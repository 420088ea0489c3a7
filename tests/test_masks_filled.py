"""``masks.filled``: the same as Arrow's ``fill_null`` on booleans, by bitmap kernels."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from csvimport.masks import filled


@given(st.lists(st.one_of(st.none(), st.booleans())), st.booleans(), st.data())
def test_filled_is_fill_null(values: list[bool | None], fill: bool, data: st.DataObject) -> None:
    arr = pa.array(values, type=pa.bool_())
    if values:  # a slice too: the bitmaps start at an offset
        start = data.draw(st.integers(0, len(values) - 1))
        arr = arr.slice(start)
    got = filled(arr, fill)
    assert got.null_count == 0
    assert got.to_pylist() == pc.fill_null(arr, fill).to_pylist()
