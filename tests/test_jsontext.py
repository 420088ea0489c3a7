"""Column-built JSON text must be exactly what ``json`` reads back."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from csvimport import jsontext


@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=30))
def test_string_literals_read_back(values: list[str | None]) -> None:
    got = jsontext.string_literals(pa.array(values, type=jsontext.TEXT)).to_pylist()
    assert [None if g is None else json.loads(g) for g in got] == values


def test_object_rows_keep_rows_without_members() -> None:
    # pyarrow's join with null_handling="skip" drops such rows; the column must keep its length.
    a = pa.array(['"x"', None, None, '"y"'], type=jsontext.TEXT)
    b = pa.array(["true", None, "false", None], type=jsontext.TEXT)
    fields = [
        (key, pa.compute.is_valid(v).to_numpy(zero_copy_only=False), _after_prefix(v))
        for key, v in (("a", a), ("b", b))
    ]
    got, present = jsontext.object_rows("{", "}", 4, fields)
    assert got.to_pylist() == ['{"a": "x", "b": true}', "{}", '{"b": false}', '{"a": "y"}']
    assert list(present) == [True, False, True, True]
    assert [json.loads(g) for g in got.to_pylist()] == [
        {"a": "x", "b": True},
        {},
        {"b": False},
        {"a": "y"},
    ]


def _after_prefix(literals: pa.Array) -> jsontext.Builder:
    return lambda prefix: jsontext.concat(prefix, literals)


def test_boolean_literals_after_a_prefix() -> None:
    got = jsontext.boolean_literals(pa.array(["TRUE", "", "FALSE"], type=jsontext.TEXT), ', "k": ')
    assert got.to_pylist() == [', "k": true', None, ', "k": false']


def test_null_where_shares_the_bytes_of_a_fresh_array_and_copies_others() -> None:
    fresh = pa.array(["a", "bb", "c"], type=jsontext.TEXT)
    got = jsontext.null_where(fresh, np.array([False, True, False]))
    assert got.to_pylist() == ["a", None, "c"]
    assert got.buffers()[2].address == fresh.buffers()[2].address
    sliced = pa.array(["z", "a", "bb", "c"], type=jsontext.TEXT).slice(1)
    assert jsontext.null_where(sliced, np.array([True, False, False])).to_pylist() == [
        None,
        "bb",
        "c",
    ]


def test_boolean_literals() -> None:
    got = jsontext.boolean_literals(pa.array(["TRUE", "FALSE", "", "yes"], type=jsontext.TEXT))
    assert got.to_pylist() == ["true", "false", None, None]


@given(st.lists(st.text(), min_size=1, max_size=12), st.data())
def test_string_literals_of_a_slice_escape_its_own_cells(
    values: list[str], data: st.DataObject
) -> None:
    """A slice shares its parent's byte buffer: the escaping decision must see exactly the
    slice's bytes (plan.jsonl is written slice by slice)."""
    arr = pa.array(values, type=jsontext.TEXT)
    start = data.draw(st.integers(0, len(values) - 1))
    stop = data.draw(st.integers(start, len(values)))
    part = arr.slice(start, stop - start)
    got = jsontext.string_literals(part).to_pylist()
    assert [json.loads(text) for text in got] == values[start:stop]


@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=3, max_size=3)))
def test_object_rows_put_separators_right(rows: list[list[str | None]]) -> None:
    """Whatever members are missing, each row is the JSON object of its present members, in
    field order, written as json.dumps writes it; rows with none are the empty object."""
    keys = ["a", "b", "c"]
    n = len(rows)
    fields = []
    for j, key in enumerate(keys):
        col = pa.array([r[j] for r in rows], type=jsontext.TEXT)
        present = pa.compute.is_valid(col).to_numpy(zero_copy_only=False)
        literal = jsontext.string_literals(col)
        fields.append((key, present, lambda prefix, lit=literal: jsontext.concat(prefix, lit)))
    got, anything = jsontext.object_rows("{", "}", n, fields)
    want = [{k: v for k, v in zip(keys, r, strict=True) if v is not None} for r in rows]
    assert got.to_pylist() == [json.dumps(w, ensure_ascii=False) for w in want]
    assert list(anything) == [bool(w) for w in want]


@given(
    st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8).flatmap(
        lambda everywhere: st.tuples(
            st.just(everywhere),
            st.lists(
                st.one_of(st.none(), st.text(max_size=4)),
                min_size=len(everywhere),
                max_size=len(everywhere),
            ),
        )
    )
)
def test_object_rows_join_piece_members_with_sparse_ones(
    columns: tuple[list[str], list[str | None]],
) -> None:
    """Members given as pieces (``string_member``: a field present in every row, quotes and
    escapes included) and members given as one column (null where absent) come out as
    json.dumps writes the object, whichever field comes first."""
    full, sparse = columns
    n = len(full)
    every = pa.array(full, type=jsontext.TEXT)
    some = pa.array(sparse, type=jsontext.TEXT)
    literal = jsontext.string_literals(some)

    def pieces(prefix: jsontext.Prefix) -> jsontext.Member:
        if isinstance(prefix, str):
            return jsontext.string_member(every, prefix)
        return jsontext.concat(prefix, jsontext.string_literals(every))  # as the planner does

    fields: list[tuple[str, np.ndarray, jsontext.Builder]] = [
        ("s", pa.compute.is_valid(some).to_numpy(zero_copy_only=False), _after_prefix(literal)),
        ('f"1', np.ones(n, dtype=bool), pieces),
        ("t", pa.compute.is_valid(some).to_numpy(zero_copy_only=False), _after_prefix(literal)),
        ("f2", np.ones(n, dtype=bool), pieces),
    ]
    got, anything = jsontext.object_rows('{"x": {', "}}", n, fields)
    want = []
    for value, maybe in zip(full, sparse, strict=True):
        members = {} if maybe is None else {"s": maybe}
        members['f"1'] = value
        if maybe is not None:
            members["t"] = maybe
        members["f2"] = value
        want.append(json.dumps({"x": members}, ensure_ascii=False))
    assert got.to_pylist() == want
    assert anything.all()
