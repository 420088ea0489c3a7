"""The planner's sort of operations: the same order as ``np.lexsort``, whatever the keys."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from csvimport.plan import _sorted_by

KEY = st.integers(-(2**40), 2**40)


@given(st.lists(st.tuples(KEY, st.integers(-1, 3), st.integers(0, 30)), max_size=60))
def test_packed_sort_is_lexsort(rows: list[tuple[int, int, int]]) -> None:
    keys = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(3)]
    if not rows:
        assert len(_sorted_by(keys)) == 0
        return
    assert (_sorted_by(keys) == np.lexsort(tuple(reversed(keys)))).all()


@given(st.lists(st.tuples(st.integers(-(2**62), 2**62), st.integers(0, 9)), min_size=1))
def test_keys_too_wide_to_pack_still_sort(rows: list[tuple[int, int]]) -> None:
    keys = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(2)]
    assert (_sorted_by(keys) == np.lexsort(tuple(reversed(keys)))).all()
