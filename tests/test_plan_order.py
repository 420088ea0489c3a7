"""The planner's operations: sorted as ``np.lexsort`` would, whatever the keys; each with its
row's email; kinds and licenses held as codes that read back as their text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from csvimport import engine as eng
from csvimport.apply import _operations
from csvimport.model import Options
from csvimport.plan import PLAN_KINDS, _emails_at, _sorted_by
from csvimport.planwrite import plan_lines

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


def _rows_with_emails(index: list[int], emails: list[str]) -> SimpleNamespace:
    cells = pd.DataFrame({"email": pd.array(emails, dtype="str")}, index=pd.Index(index))
    return SimpleNamespace(v=SimpleNamespace(cells=cells), index=cells.index)


@given(st.lists(st.integers(2, 10_000), min_size=1, max_size=40, unique=True), st.data())
def test_each_operation_gets_its_rows_email_whatever_the_row_order(
    index: list[int], data: st.DataObject
) -> None:
    """Rows in file order take a binary search, others a hash lookup: same emails."""
    emails = [f"u{n}@acme.example" for n in index]
    wanted = data.draw(st.lists(st.sampled_from(index), max_size=60))
    for order in (sorted(index), index):
        paired = dict(zip(index, emails, strict=True))
        rows = _rows_with_emails(order, [paired[n] for n in order])
        got = _emails_at(rows, np.array(wanted, dtype=np.int64))  # type: ignore[arg-type]
        assert got.tolist() == [paired[n] for n in wanted]


HEADER = (
    "User ID/Email (Required),Extension,Location,Jabber Calling,Jabber with Webex Teams,"
    "Preferred Webex Site,Webex Calling,MiTeam Meetings\n"
)


def test_plan_kinds_and_licenses_are_codes_that_write_and_count_as_their_text(
    engine: Engine, acme: str, tmp_path: Path
) -> None:
    """The plan's ``op`` and ``license`` columns are categoricals: the lines, the counts and
    the operations apply reads are those of the same plan held as text."""
    path = tmp_path / "users.csv"
    path.write_text(
        HEADER
        + "eve@acme.example,1003,HQ,TRUE,TRUE,acme.webex.com,TRUE,FALSE\n"
        + "bob@acme.example,1002,HQ,TRUE,TRUE,acme.webex.com,TRUE,FALSE\n"
    )
    options = Options(file=path, org=acme, mode="add-remove", dry_run=True)
    result = eng.run(options, db=engine)
    plan = result.plan
    assert plan is not None, result.issues
    assert result.rows.rejected == 0, result.issues.to_dict("records")
    ops = plan.operations
    assert ops["op"].dtype == PLAN_KINDS
    assert isinstance(ops["license"].dtype, pd.CategoricalDtype)
    assert {"add_user", "assign_license"} <= set(ops["op"])
    assert ops["license"].isna().any() and ops["license"].notna().any()
    as_text = ops.astype({"op": object, "license": object})
    assert plan_lines(ops) == plan_lines(as_text)
    assert plan.counts() == replace(plan, operations=as_text).counts()
    assert list(_operations(ops)) == list(_operations(as_text))
