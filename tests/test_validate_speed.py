"""The shortcuts of the validate stage give the answers of the plain computations.

Each test pits a rewritten piece against the obvious version of it: the email duplicates
coded from the user positions (with and without an org), the all-blank column that is not
gathered, the cached and byte-level tests of the "after the row" view, the extension pairs
coded from distinct locations, and the boolean columns compared before they are hashed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from csvimport import catalog as catalog_mod
from csvimport import requirements as req
from csvimport import validate as v
from csvimport.model import Options
from csvimport.read import read_table

HEADER = [
    "First Name",
    "Last Name",
    "User ID/Email (Required)",
    "Extension",
    "Phone Number",
    "Location",
    "Caller ID First Name",
    "Jabber Calling",
    "Jabber with Webex Teams",
    "Webex Calling",
    "Webex Meetings",
]
USER_COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "extension",
    "phone_number",
    "caller_id_first_name",
    "location",
    "jabber_calling",
    "jabber_teams",
    "preferred_site",
    "role",
    "package",
]


def row(email: str, ext: str = "", phone: str = "", location: str = "HQ", **over: str) -> list[str]:
    cells = dict(
        zip(HEADER, ["Anna", "Berg", email, ext, phone, location, "", "TRUE", "TRUE"], strict=False)
    )
    cells.update({"Webex Calling": "", "Webex Meetings": ""})
    cells.update(over)
    return [cells[h] for h in HEADER]


def table_of(tmp_path: Path, rows: list[list[str]]):  # type: ignore[no-untyped-def]
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    return read_table(path, Options(file=path), catalog_mod.default())


def users_of(emails: list[str], **columns: list[str]) -> pd.DataFrame:
    """An org's users as the snapshot has them: lowercase email index, text columns."""
    data = {c: [f"{c}-{i}" for i in range(len(emails))] for c in USER_COLUMNS}
    data["email"] = list(emails)
    data["caller_id_first_name"] = [""] * len(emails)  # nobody has one: an all-blank column
    data["package"] = ["webex_calling"] * len(emails)
    data.update(columns)
    return pd.DataFrame(
        data, index=pd.Index([e.lower() for e in emails], name="email"), dtype="str"
    )


def issues_of(checked: v.Validated, code: str) -> list[tuple[int, str]]:
    found = checked.issues[checked.issues["code"] == code]
    return [(int(r.row), str(r.message)) for r in found.itertuples()]


def plain_duplicates(keys: list[str], first_row: int = 2) -> dict[int, int]:
    """Row of each later occurrence of a non-blank key -> row of its first occurrence."""
    seen: dict[str, int] = {}
    out: dict[int, int] = {}
    for i, key in enumerate(keys):
        if key == "":
            continue
        out.update({i + first_row: seen[key]} if key in seen else {})
        seen.setdefault(key, i + first_row)
    return out


EMAILS = [
    "Anna@Acme.example",  # a user of the org, in another case
    "new@acme.example",
    "",
    "anna@acme.example",  # duplicate of row 2 (case-folded), a known user
    "NEW@ACME.EXAMPLE",  # duplicate of row 3, a new user
    "",
    "Øse@acme.example",  # non-ASCII, a known user
    "øse@acme.example",  # duplicate of row 8
    "other@acme.example",
    "new@acme.example",  # duplicate of row 3 again: cites the first row
]


@pytest.mark.parametrize("with_org", [True, False])
def test_email_duplicates_cite_the_first_row(tmp_path: Path, with_org: bool) -> None:
    """With an org the emails are coded from the user positions (only new users hashed);
    without one they are hashed: both find every later occurrence, case-folded, blanks
    never, each citing the first row."""
    table = table_of(tmp_path, [row(e) for e in EMAILS])
    users = users_of(["anna@acme.example", "someone@acme.example", "øse@acme.example"])
    checked = v.validate(table, catalog_mod.default(), current=users if with_org else None)
    want = plain_duplicates([e.lower() for e in EMAILS])
    assert want == {5: 2, 6: 3, 9: 8, 11: 3}
    got = issues_of(checked, "duplicate_email")
    assert [r for r, _ in got] == sorted(want)
    for r, message in got:
        assert f"(first used in row {want[r]})" in message
    assert [r for r, _ in issues_of(checked, "missing_email")] == [4, 7]


def test_user_codes_equal_exactly_for_equal_keys() -> None:
    """Codes from positions (known users, duplicates in the org's index too) and from
    hashing (new users) never collide and are equal only for equal keys."""
    rng = np.random.default_rng(7)
    pool = [f"u{i}@x" for i in range(40)] + ["", "ü@x", "Ü@x"]
    keys = pd.Series([pool[i] for i in rng.integers(0, len(pool), 500)], dtype="str")
    org = pd.Index([f"u{i}@x" for i in range(0, 60, 2)] + ["u4@x", "ü@x"], dtype="str")
    current = pd.DataFrame({"c": ["v"] * len(org)}, index=org, dtype="str")
    at = req.user_positions(current, keys)
    codes = req.user_codes(at, keys, len(current))
    assert (codes >= 0).all()
    values = keys.to_numpy()
    same_key = values[:, None] == values[None, :]
    same_code = codes[:, None] == codes[None, :]
    assert (same_key == same_code).all()


def test_aligner_codes_are_those_of_user_codes() -> None:
    users = users_of(["a@x", "b@x"])
    keys = pd.Series(["b@x", "c@x", "a@x", "c@x"], dtype="str")
    aligner = req.Aligner(users, keys, pd.RangeIndex(2, 6), codes=True)
    at, _ = aligner.run()
    assert aligner.email_codes().tolist() == req.user_codes(at, keys, 2).tolist()
    plain = req.Aligner(users, keys, pd.RangeIndex(2, 6))  # not asked for: hashed on demand
    plain.run()
    codes = plain.email_codes()
    assert codes[1] == codes[3] and len(set(codes.tolist())) == 3


def test_all_blank_columns_align_like_a_take() -> None:
    """An all-blank column of the org is "" for known users and missing for new ones,
    exactly as the take gave; a column with a missing value is taken as before."""
    users = users_of(["a@x", "b@x", "c@x"])
    users["title"] = pd.array(["t", None, ""], dtype="str")
    keys = pd.Series(["c@x", "new@x", "a@x", "b@x"], dtype="str")
    index = pd.RangeIndex(2, 6)
    got = req.align_current(users, keys, index)
    assert got is not None
    want = users.reindex(keys.to_numpy())
    want.index = index
    for column in users.columns:
        assert got[column].isna().tolist() == want[column].isna().tolist(), column
        assert got[column].fillna("?").tolist() == want[column].fillna("?").tolist(), column
        assert str(got[column].dtype) == "str"
    assert req._all_blank(pa.array(users["caller_id_first_name"].array))
    assert not req._all_blank(pa.array(users["title"].array))
    assert not req._all_blank(pa.array(pd.array([None, None], dtype="str")))


def test_after_view_fills_blank_cells_from_the_user() -> None:
    cells = pd.DataFrame({"location": ["", "Oslo", "", ""]}, index=range(2, 6), dtype="str")
    cur = pd.DataFrame({"location": ["Bergen", "Bergen", None, ""]}, index=range(2, 6), dtype="str")
    row_package = pd.Series(["", "", "", ""], index=cells.index, dtype=object)
    view = req.AfterView(cells, {}, row_package, "add-only", cur)
    assert view["location"].tolist() == ["Bergen", "Oslo", "", ""]
    assert view["location"] is view["location"]  # kept for ``frame``
    assert view.blank("location").tolist() == [False, False, True, True]
    assert view.blank("first_name").tolist() == [True] * 4  # in neither


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_longer_than_counts_characters_not_bytes(limit: int) -> None:
    names = ["", "Åse", "Bo", "Ørjan", "日本語", "Anne", "😀😀", "abc"]
    text = pa.array(names, pa.large_string())
    assert req._longer_than(text, limit).tolist() == [len(n) > limit for n in names]


def test_duplicate_extensions_group_locations_case_free(tmp_path: Path) -> None:
    rows = [
        row("a@x.example", "1001", location="HQ"),
        row("b@x.example", "1001", location="hq"),  # same location, other case: duplicate
        row("c@x.example", "1001", location="Oslo"),  # another location: fine
        row("d@x.example", "1001", location=""),
        row("e@x.example", "1001", location=""),  # blank location: a group of its own
        row("f@x.example", "", location="HQ"),  # no extension: never a duplicate
        row("g@x.example", "", location="HQ"),
        row("h@x.example", "1001", location="Ärhus"),
        row("i@x.example", "1001", location="ärhus"),  # non-ASCII lowercased too
        row("j@x.example", "1002", location="HQ"),  # another extension: fine
    ]
    checked = v.validate(table_of(tmp_path, rows), catalog_mod.default())
    got = issues_of(checked, "duplicate_extension")
    assert [r for r, _ in got] == [3, 6, 10]
    assert "(location hq; first used in row 2)" in got[0][1]
    assert "(location (no location); first used in row 5)" in got[1][1]
    assert "(location ärhus; first used in row 9)" in got[2][1]


def test_boolean_columns_of_the_common_words_only() -> None:
    """A column of only TRUE / FALSE / blank / missing is decided by the equality scans alone."""
    cat = catalog_mod.default()
    cells = ["TRUE", "FALSE", "", None, "TRUE", "true", "False", "FALSE"]
    is_true, is_false = v._boolean_words(pa.array(cells, pa.large_string()), cat)
    assert is_true.tolist() == [True, False, False, False, True, True, False, False]
    assert is_false.tolist() == [False, True, False, False, False, False, True, True]


def test_flags_are_nullable_booleans(tmp_path: Path) -> None:
    rows = [
        row(f"u{i}@x.example", **{"Jabber Calling": w})
        for i, w in enumerate(["TRUE", "", "nein", "ja", "FALSE", "Yes"])
    ]
    checked = v.validate(table_of(tmp_path, rows), catalog_mod.default())
    flag = checked.flags["jabber_calling"]
    assert str(flag.dtype) == "boolean"
    assert flag.tolist() == [True, pd.NA, pd.NA, pd.NA, False, True]
    assert [r for r, _ in issues_of(checked, "invalid_boolean")] == [4, 5]


def test_requirements_follow_each_rows_package(tmp_path: Path) -> None:
    """Per package its own required cells: Webex Calling needs a location and a number,
    Webex Meetings neither (its rows are told apart from the calling ones)."""
    rows = [
        row("b@x.example", location="", **{"Webex Meetings": "TRUE"}),
        row("a@x.example", location="", **{"Webex Calling": "TRUE"}),
        row("c@x.example", "1003", location="", **{"Webex Calling": "TRUE"}),
    ]
    checked = v.validate(table_of(tmp_path, rows), catalog_mod.default())
    missing = checked.issues[checked.issues["code"] == "missing_required_field"]
    assert sorted(zip(missing["row"].astype(int), missing["column"], strict=True)) == [
        (3, "Extension"),
        (3, "Location"),
        (4, "Location"),
    ]
