"""Row-level codes that need no org (SPEC 5), each asserted as ``(row, column, code)``."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest

from csvimport import engine
from csvimport.model import Options, Status

H = [
    "First Name",
    "Last Name",
    "User ID/Email (Required)",
    "Extension",
    "Phone Number",
    "Location",
    "Jabber Calling",
    "Jabber with Webex Teams",
    "Preferred Webex Site",
    "Webex Calling",
    "Webex Suite",
    "Webex Voice",
]
E = "User ID/Email (Required)"


def good(email: str, ext: str = "1001", phone: str = "+4930123456", **over: str) -> list[str]:
    row = dict(
        zip(
            H,
            [
                "Anna",
                "Berg",
                email,
                ext,
                phone,
                "HQ",
                "TRUE",
                "TRUE",
                "acme.webex.com",
                "TRUE",
                "",
                "",
            ],
            strict=True,
        )
    )
    row.update(over)
    return [row[h] for h in H]


def run(
    tmp_path: Path, rows: list[list[str]], header: list[str] = H, **opts: object
) -> engine.Result:
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return engine.run(Options(file=path, report_dir=tmp_path / "rep", **opts))  # type: ignore[arg-type]


def found(result: engine.Result) -> set[tuple[int | None, str, str]]:
    return {
        (None if str(r.row) == "<NA>" else int(r.row), r.column, r.code)
        for r in result.issues.itertuples()
    }


def test_clean_file_has_no_issues(tmp_path: Path) -> None:
    result = run(tmp_path, [good("a@acme.example"), good("b@acme.example", "1002", "+4930123457")])
    assert found(result) == set()
    assert result.status == Status.COMPLETED
    assert result.rows.total == 2 and result.rows.valid == 2


@pytest.mark.parametrize(
    ("row", "code", "column"),
    [
        (good(""), "missing_email", E),
        (good("not-an-email"), "invalid_email", E),
        (good("a..b@acme.example"), "invalid_email", E),
        (good("x" * 65 + "@acme.example"), "invalid_email", E),
        (
            good("a@acme.example", **{"Jabber Calling": "maybe"}),
            "invalid_boolean",
            "Jabber Calling",
        ),
        (good("a@acme.example", **{"Webex Suite": "TRUE"}), "multiple_packages", E),
        (good("a@acme.example", Location=""), "missing_required_field", "Location"),
        (good("a@acme.example", ext="", phone=""), "missing_required_field", "Extension"),
        (
            good("a@acme.example", **{"Jabber with Webex Teams": ""}),
            "missing_required_field",
            "Jabber with Webex Teams",
        ),
        (
            good("a@acme.example", **{"Preferred Webex Site": ""}),
            "missing_preferred_site",
            "Preferred Webex Site",
        ),
        (good("a@acme.example", **{"First Name": "A" * 31}), "invalid_name", "First Name"),
        (good("a@acme.example", **{"Last Name": "Berg<script>"}), "invalid_name", "Last Name"),
        (good("a@acme.example", phone="030 123456"), "invalid_phone", "Phone Number"),
        (good("a@acme.example", phone="4.47700900123E+11"), "number_mangled", "Phone Number"),
        (good("a@acme.example", ext="1001.0"), "number_mangled", "Extension"),
        (good("a@acme.example", ext="7"), "invalid_extension", "Extension"),
        (good("a@acme.example", ext="12345678901"), "invalid_extension", "Extension"),
    ],
)
def test_single_row_code(tmp_path: Path, row: list[str], code: str, column: str) -> None:
    result = run(tmp_path, [row])
    assert (2, column, code) in found(result)
    assert {c for _, _, c in found(result)} == {code}


def test_preferred_site_is_a_warning_and_not_needed_for_voice(tmp_path: Path) -> None:
    voice = good(
        "v@acme.example",
        "1002",
        "+4930123457",
        **{"Webex Calling": "", "Webex Voice": "TRUE", "Preferred Webex Site": ""},
    )
    result = run(tmp_path, [good("a@acme.example", **{"Preferred Webex Site": ""}), voice])
    assert found(result) == {(2, "Preferred Webex Site", "missing_preferred_site")}
    assert result.status == Status.COMPLETED
    assert result.rows.with_warnings == 1 and result.rows.rejected == 0


def test_names_are_free_for_non_calling_packages(tmp_path: Path) -> None:
    meetings_header = [h if h != "Webex Voice" else "Webex Meetings" for h in H]
    row = good(
        "a@acme.example", **{"Webex Calling": "", "Webex Voice": "TRUE", "First Name": "A#" * 20}
    )
    assert found(run(tmp_path, [row], header=meetings_header)) == set()


def test_duplicates_cite_the_first_row(tmp_path: Path) -> None:
    rows = [
        good("a@acme.example", "1001", "+4930123456"),
        good("A@ACME.example", "1002", "+4930123457"),
        good("b@acme.example", "1003", "+49 30 123456"),
        good("c@acme.example", "1001", "+4930123458"),
        good("d@acme.example", "1001", "+4930123459", Location="Berlin"),
    ]
    result = run(tmp_path, rows)
    assert found(result) == {
        (3, E, "duplicate_email"),
        (4, "Phone Number", "duplicate_phone"),
        (5, "Extension", "duplicate_extension"),
    }
    messages = " ".join(result.issues["message"])
    assert "first used in row 2" in messages


def test_blank_location_is_a_group_of_its_own(tmp_path: Path) -> None:
    rows = [
        good("a@acme.example", Location="", **{"Webex Calling": ""}),
        good("b@acme.example", "1001", "+4930123457", Location="", **{"Webex Calling": ""}),
    ]
    assert (3, "Extension", "duplicate_extension") in found(run(tmp_path, rows))


def test_suspended_column_and_delete_in_add_only(tmp_path: Path) -> None:
    header = [*H, "MiTeam Meetings (Suspended)"]
    rows = [
        [*good("a@acme.example"), "TRUE"],
        [
            *good(
                "b@acme.example",
                "1002",
                "+4930123457",
                **{"Webex Calling": "FALSE", "Webex Suite": "FALSE", "Webex Voice": "FALSE"},
            ),
            "FALSE",
        ],
    ]
    result = run(tmp_path, rows, header=header)
    assert found(result) == {
        (2, "MiTeam Meetings (Suspended)", "suspended_license"),
        (3, E, "delete_requires_remove_mode"),
    }
    assert found(run(tmp_path, rows, header=header, mode="add-remove")) == {
        (2, "MiTeam Meetings (Suspended)", "suspended_license"),
    }


def test_locale_booleans_and_blank_means_no_change(tmp_path: Path) -> None:
    rows = [
        good(f"u{i}@acme.example", str(1000 + i), f"+493012345{i}", **{"Jabber Calling": word})
        for i, word in enumerate(
            ["wahr", "FALSCH", "sann", "usann", "Sand", "falsk", "VRAI", "onwaar", "t", "No"]
        )
    ]
    assert found(run(tmp_path, rows)) == set()


def test_every_issue_names_column_value_and_fix(tmp_path: Path) -> None:
    result = run(tmp_path, [good("bad@@x", ext="7")])
    for issue in result.issues.itertuples():
        assert issue.column and issue.message and issue.value
        assert ":" in issue.message  # "<what is wrong>: <what to do>"


def test_issue_cap_keeps_counts_complete(tmp_path: Path) -> None:
    rows = [good(f"bad{i}", str(1000 + i), f"+49301234{i:03d}") for i in range(30)]
    result = run(tmp_path, rows, max_issues=10)
    assert result.issue_counts["invalid_email"] == 30
    assert result.issue_counts["issue_limit_reached"] == 1
    assert len(result.issues) == 11
    assert result.rows.rejected == 30
    errors = (tmp_path / "rep" / "errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(errors) == 31  # every rejected row, not only the listed issues


def test_xlsx_number_cells(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(H)
    ws.append(
        [
            "Anna",
            "Berg",
            "a@acme.example",
            1001,
            447700900123,
            "HQ",
            True,
            True,
            "s.webex.com",
            True,
            None,
            None,
        ]
    )
    ws.append(
        [
            "Bo",
            "Berg",
            "b@acme.example",
            "0042",
            "+4930123457",
            "HQ",
            "TRUE",
            "TRUE",
            "s.webex.com",
            "TRUE",
            None,
            None,
        ]
    )
    path = tmp_path / "users.xlsx"
    wb.save(path)
    result = engine.run(Options(file=path, report_dir=tmp_path / "rep"))
    assert found(result) == {(2, "Phone Number", "number_mangled")}
    assert result.table is not None
    ext = result.table.frame[H.index("Extension")]
    assert list(ext) == ["1001", "0042"]
    assert (tmp_path / "rep" / "rejected.xlsx").exists()


NUMBER_CELLS = [
    "1001",
    "12",
    "1",
    "12345678901",
    "10a",
    "",
    "+4930123456",
    "+49 30 123456",
    "4.477E+20",
    "1,5",
    "1.5",
    "+1e5",
    "-1e3",
    "e5",
    "1e",
    "(030) 1234-56",
    "+49/30[12]34.56",
    "+1234567",
    "+123456789012345",
    "+1234567890123456",
    "++49301234",
    "49301234+",
    "1.5.5",
    "0012",
]
NON_ASCII_CELLS = ["١٢٣٤", "12é", "+١٢٣٤٥٦٧٨٩", "١,٥", "١e٥", "+49 30 ١٢٣٤٥٦"]


@pytest.mark.parametrize("cells", [NUMBER_CELLS, NUMBER_CELLS + NON_ASCII_CELLS])
def test_byte_checks_agree_with_pandas_regexes(cells: list[str]) -> None:
    """The regex-free number checks give pandas' own answers, including its Python-``re``
    fallback (Unicode ``\\d``) on columns with non-ASCII text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from csvimport import validate as v

    s = pd.Series(cells, index=range(2, 2 + len(cells)), dtype="str")
    plain = v.compact_phone(s)
    arrow = pc.replace_substring_regex(pa.array(s.array), v.PHONE_SEPARATORS, "")
    assert plain.tolist() == pd.Series(arrow, dtype="str").tolist()
    phone = ((s == "") | plain.str.fullmatch(v.E164_RE)).to_numpy(dtype=bool)
    extension = ((s == "") | s.str.fullmatch(v.EXTENSION_RE)).to_numpy(dtype=bool)
    assert v._acceptable("phone", s, v._Numbers.of(plain)).tolist() == phone.tolist()
    assert v._acceptable("extension", s, v._Numbers.of(s)).tolist() == extension.tolist()
    mangled = s.str.fullmatch(v.MANGLED_RE).to_numpy(bool)
    assert v._Numbers.of(s).mangled().tolist() == mangled.tolist()


def test_boolean_words_are_the_lowercased_lookup() -> None:
    """The spelling lookup finds what lowercasing every cell and looking it up found."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from csvimport import catalog as catalog_mod
    from csvimport import validate as v

    cat = catalog_mod.default()
    words = sorted(cat.true_words | cat.false_words)
    odd = ["", "x", "tRuE", "Wahr", "FALSKT", "ＴＲＵＥ", "\u212aS", "İ", "1", "0", "yes ", "No"]
    cells = odd + [f(w) for w in words for f in (str, str.upper, str.title, str.swapcase)]
    text = pa.array(cells, pa.large_string())
    folded = pd.Series(pc.utf8_lower(text), dtype="str")
    is_true, is_false = v._boolean_words(text, cat)
    assert is_true.tolist() == folded.isin(cat.true_words).tolist()
    assert is_false.tolist() == folded.isin(cat.false_words).tolist()


def test_requirement_checks_left_to_the_planner_give_the_same_issues(tmp_path: Path) -> None:
    """``validate(..., defer=True)`` leaves the requirement checks in ``pending``; row checks
    and those checks together list what one validation lists, in the same order."""
    from csvimport import catalog as catalog_mod
    from csvimport.issues import concat_issues
    from csvimport.read import read_table
    from csvimport.validate import validate

    rows = [
        good("a@acme.example", ext="1001"),
        good("b@acme.example", ext="1001"),  # duplicate_extension: a requirement check
        good("not-an-email", ext="12345678901"),  # row checks: email, extension
        good("c@acme.example", **{"First Name": "", "Last Name": ""}),  # required names
        good("d@acme.example", **{"Webex Calling": "FALSE"}),  # deletes in add-only
    ]
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([H, *rows])
    cat = catalog_mod.default()
    table = read_table(path, Options(file=path), cat)
    whole = validate(table, cat)
    left = validate(table, cat, defer=True)
    assert whole.pending is None and left.pending is not None
    later = left.pending.issues()
    assert len(later) and len(left.issues) and len(later) + len(left.issues) == len(whole.issues)
    joined = concat_issues([left.issues, later])
    assert joined.astype(str).equals(whole.issues.astype(str))
