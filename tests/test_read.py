"""Tests of ``csvimport.read``: real files in ``tmp_path``, compared as (row, column, code)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Literal

import openpyxl
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from csvimport import read as read_mod
from csvimport.catalog import default
from csvimport.csvparse import TRIM_CHARS, sniff_delimiter
from csvimport.model import FileRejected, Issue, Options, Table
from csvimport.read import (
    RawTable,
    cell_text,
    column_letter,
    match_columns,
    read_raw,
    read_table,
    sha256_of,
    split_suffixes,
)

EMAIL = "User ID/Email (Required)"

# --------------------------------------------------------------------------- helpers


def write(tmp_path: Path, data: bytes | str, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def table(tmp_path: Path, data: bytes | str, **options: object) -> Table:
    return read_table(write(tmp_path, data), Options(**options))  # type: ignore[arg-type]


def rejected(path: Path, **options: object) -> list[tuple[int | None, str, str]]:
    with pytest.raises(FileRejected) as caught:
        read_table(path, Options(**options))  # type: ignore[arg-type]
    for issue in caught.value.issues:
        assert issue.message and issue.severity == "error"
    return [(i.row, i.column, i.code) for i in caught.value.issues]


def triples(issues: list[Issue]) -> list[tuple[int | None, str, str, str]]:
    return [(i.row, i.column, i.code, i.severity) for i in issues]


def cells(frame: pd.DataFrame) -> dict[int, list[object]]:
    return {
        int(row): list(values)
        for row, values in zip(frame.index, frame.to_numpy().tolist(), strict=True)
    }


def xlsx(
    tmp_path: Path, sheets: dict[str, list[list[object]]], hidden: tuple[str, ...] = ()
) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if name in hidden:
            sheet.sheet_state = "hidden"
    path = tmp_path / "users.xlsx"
    book.save(path)
    return path


def rewrite_zip(
    src: Path, dst: Path, edit: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", method) as new:
        for info in old.infolist():
            new.writestr(info.filename, edit.get(info.filename, old.read(info.filename)))
        for name, data in edit.items():
            if name not in old.namelist():
                new.writestr(name, data)
    return dst


def sheet_part(path: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.startswith("xl/worksheets/sheet"))
        return name, archive.read(name)


# --------------------------------------------------------------------------- round trips

_PLAIN = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_CP1252 = st.characters(codec="cp1252", exclude_characters="\x00")
_SPECIAL = st.sampled_from([",", ";", "\t", "|", '"', "\n", "\r", "\r\n", "é", "日本", "😀", "'"])


def _cell(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    parts = st.lists(st.one_of(st.text(alphabet, max_size=6), _SPECIAL), max_size=4)
    return parts.map("".join).filter(lambda s: s == s.strip(TRIM_CHARS) and not s.startswith("'"))


@st.composite
def csv_cases(draw: st.DrawFn) -> tuple[str, str, Literal[0, 1], list[list[str]], bool]:
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quoting: Literal[0, 1] = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    width = draw(st.integers(2, 4))
    alphabet = _CP1252 if encoding == "cp1252" else _PLAIN
    cell = _cell(alphabet).filter(lambda s: encoding != "cp1252" or _cp1252_ok(s))
    rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1, max_size=6))
    return encoding, delimiter, quoting, rows, draw(st.booleans())


def _without_trailing_empties(row: list[str]) -> list[str]:
    while row and row[-1] == "":
        row = row[:-1]
    return row


def _cp1252_ok(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(case=csv_cases())
def test_any_table_reads_back_identical(
    tmp_path: Path, case: tuple[str, str, Literal[0, 1], list[list[str]], bool]
) -> None:
    encoding, delimiter, quoting, rows, short = case
    header = [f"h{i}" for i in range(len(rows[0]))]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:  # some tools drop trailing empty cells: forces the exact Python parser
        writer.writerow(_without_trailing_empties(row) if short else row)
    data = buffer.getvalue().encode(encoding)
    if encoding == "cp1252":
        try:  # cp1252 bytes that happen to be valid UTF-8 are UTF-8: by design
            assume(data.decode("utf-8") == buffer.getvalue())
            encoding = "utf-8"
        except UnicodeDecodeError:
            pass
    path = write(tmp_path, data)
    expected = {n: r for n, r in enumerate(rows, start=2) if any(r)}
    if not expected:
        assert rejected(path) == [(None, "", "empty_file")]
        return
    raw = read_raw(path, Options())
    assert (raw.encoding, raw.delimiter, raw.kind, raw.header) == (
        encoding,
        delimiter,
        "csv",
        header,
    )
    assert cells(raw.frame) == expected
    assert raw.frame.index.name == "row" and [int(c) for c in raw.frame.columns] == list(
        range(len(header))
    )


# --------------------------------------------------------------------------- CSV dialects


def test_sep_line_is_honoured_and_not_a_row(tmp_path: Path) -> None:
    t = table(tmp_path, "sep=|\nEmail|First Name\na@x.com|Ann, Marie\n")
    assert (t.delimiter, t.header) == ("|", ["Email", "First Name"])
    assert cells(t.frame) == {2: ["a@x.com", "Ann, Marie"]}


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_line_ends_and_quoted_newlines(tmp_path: Path, eol: str) -> None:
    text = eol.join(
        ["Email,Title", 'a@x.com,"two' + eol + 'lines"', "", 'b@x.com,"say ""hi"", ok"', ""]
    )
    t = table(tmp_path, text)
    assert cells(t.frame) == {2: ["a@x.com", f"two{eol}lines"], 4: ["b@x.com", 'say "hi", ok']}


def test_german_excel_file(tmp_path: Path) -> None:
    text = "Benutzer-ID/E-Mail (erforderlich);Vorname;Nachname;Jabber Calling\r\n"
    text += "jörg@beispiel.de;Jörg;Müller-Lüdenscheidt;WAHR\r\n"
    t = table(tmp_path, text.encode("cp1252"))
    assert (t.encoding, t.delimiter) == ("cp1252", ";")
    assert [c.key for c in t.columns] == ["email", "first_name", "last_name", "jabber_calling"]
    assert cells(t.frame) == {2: ["jörg@beispiel.de", "Jörg", "Müller-Lüdenscheidt", "WAHR"]}


def test_utf16_unicode_text(tmp_path: Path) -> None:
    text = "Email\tFirst Name\r\nå@x.no\tÅse\r\nz@x.jp\t日本\r\n"
    t = table(tmp_path, text.encode("utf-16"))
    assert (t.encoding, t.delimiter) == ("utf-16", "\t")
    assert cells(t.frame) == {2: ["å@x.no", "Åse"], 3: ["z@x.jp", "日本"]}


def test_utf8_bom(tmp_path: Path) -> None:
    t = table(tmp_path, "\ufeffEmail;Title\nx@y.z;Chef\n".encode())
    assert (t.encoding, t.delimiter, t.header) == ("utf-8-sig", ";", ["Email", "Title"])


def test_sniffing() -> None:
    assert sniff_delimiter("Email\na@b.c\n") == ","
    assert sniff_delimiter("Name;Email\nMüller, Hans;a@b.c\n") == ";"
    assert sniff_delimiter('Email,Title\na@b.c,"x;y;z"\n') == ","
    assert sniff_delimiter("A|B|C\n1|2|3\n") == "|"


def test_one_column_file(tmp_path: Path) -> None:
    t = table(tmp_path, "Email\na@b.c\n")
    assert (t.delimiter, cells(t.frame)) == (",", {2: ["a@b.c"]})


def test_blank_rows_keep_numbers_and_leading_blank_lines(tmp_path: Path) -> None:
    t = table(tmp_path, "\n\nEmail,Title\n , \u00a0\n\na@b.c,x\n,,\n")
    assert cells(t.frame) == {6: ["a@b.c", "x"]}


def test_cells_trimmed_and_quote_mark_dropped(tmp_path: Path) -> None:
    values = [
        ("\u00a0 a@b.c\u200b ", "a@b.c"),
        ("\u2060'=SUM(A1)", "=SUM(A1)"),
        ("'@cmd", "@cmd"),
        ("'+4930", "+4930"),
        ("'-x", "-x"),
        ("'abc", "'abc"),
        ("O'Brien", "O'Brien"),
    ]
    text = "Email,Title\n" + "".join(f"x@y.z,{raw}\n" for raw, _ in values)
    t = table(tmp_path, text)
    assert list(t.frame[1]) == [want for _, want in values]
    assert list(t.frame[0]) == ["x@y.z"] * len(values)


def test_everything_stays_text(tmp_path: Path) -> None:
    t = table(
        tmp_path, "Email,Extension,Phone Number,Title\nNA,0042,1e5,\nMixed@Case.COM,null,,NaN\n"
    )
    assert cells(t.frame) == {
        2: ["NA", "0042", "1e5", ""],
        3: ["Mixed@Case.COM", "null", "", "NaN"],
    }
    assert not t.frame.isna().any().any()
    assert all(pd.api.types.is_string_dtype(d) for d in t.frame.dtypes)
    assert bool((t.frame[3] == "").iloc[0])
    assert t.numeric is None


def test_short_records_pad_long_records_with_empty_extras_pass(tmp_path: Path) -> None:
    t = table(tmp_path, "Email,Title,Department\na@b.c\nb@b.c,x,y,,\n")
    assert cells(t.frame) == {2: ["a@b.c", "", ""], 3: ["b@b.c", "x", "y"]}


def test_long_record_with_values_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "Email,Title\na@b.c,x\nb@b.c,Smith, John\n")
    assert rejected(path) == [(None, "", "unreadable_file")]
    with pytest.raises(FileRejected, match="Row 3 has 3 values but the header has 2"):
        read_table(path, Options())


def test_two_hundred_thousand_rows(tmp_path: Path) -> None:
    lines = ["Email,First Name,Extension"] + [
        f"u{i}@x.com,Ann {i},{1000 + i}" for i in range(200_000)
    ]
    t = table(tmp_path, "\n".join(lines) + "\n")
    assert len(t.frame) == 200_000
    assert (t.frame.index[0], t.frame.index[-1]) == (2, 200_001)
    assert t.frame.iat[-1, 2] == "200999"


# --------------------------------------------------------------------------- file-level codes


def test_file_level_codes(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "First Name,Title\nAnn,x\n")) == [
        (None, EMAIL, "missing_column")
    ]
    assert rejected(write(tmp_path, "Email,E-Mail\na,b\n")) == [
        (None, "E-Mail", "duplicate_column")
    ]
    assert rejected(write(tmp_path, "Email,Title\n")) == [(None, "", "empty_file")]
    assert rejected(write(tmp_path, "")) == [(None, "", "empty_file")]
    assert rejected(write(tmp_path, "\n ,\n\n")) == [(None, "", "empty_file")]
    assert rejected(write(tmp_path, b"Email\n\x81\x8d\n")) == [(None, "", "unreadable_file")]
    assert rejected(write(tmp_path, "Email,Title\n".encode("utf-16-le"))) == [
        (None, "", "unreadable_file")
    ]


def test_duplicate_message_names_both_headers(tmp_path: Path) -> None:
    with pytest.raises(FileRejected, match=r"'Email' .* and 'UserID/Email' .*"):
        read_table(write(tmp_path, "Email,UserID/Email\na,b\n"), Options())


def test_row_limits_count_user_rows_only(tmp_path: Path) -> None:
    path = write(tmp_path, "Email\na@b.c\n\n\nb@b.c\n\n")
    assert len(read_table(path, Options(max_rows=2)).frame) == 2
    assert rejected(path, max_rows=1) == [(None, "", "too_many_rows")]
    assert rejected(path, max_bytes=10) == [(None, "", "file_too_large")]


def test_unreadable_missing_file(tmp_path: Path) -> None:
    assert rejected(tmp_path / "absent.csv") == [(None, "", "unreadable_file")]


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "header",
    [EMAIL, "UserID/Email (Required)", "Email", " email ", "Benutzer-ID/E-Mail (erforderlich)"],
)
def test_email_aliases(tmp_path: Path, header: str) -> None:
    t = table(tmp_path, f'"{header}"\na@b.c\n')
    assert (t.columns[0].kind, t.columns[0].key, t.columns[0].header) == (
        "field",
        "email",
        header.strip(),
    )


def test_unknown_column_warns_and_readonly_is_silent(tmp_path: Path) -> None:
    header = (
        "Email,Shoe Size,User Status,Last Service Accessed Time,Days since Last Service Accessed,,"
    )
    t = table(tmp_path, header + "\na@b.c,42,Active,2024-01-01,3,,\n")
    assert triples(t.issues) == [(None, "Shoe Size", "unknown_column", "warning")]
    assert [c.kind for c in t.columns] == [
        "field",
        "unknown",
        "readonly",
        "readonly",
        "readonly",
        "unknown",
        "unknown",
    ]
    assert "Shoe Size" in t.issues[0].message


def test_unnamed_column_with_values_warns(tmp_path: Path) -> None:
    t = table(tmp_path, "Email,,\na@b.c,,x\n")
    assert triples(t.issues) == [(None, "", "unknown_column", "warning")]
    assert "Column C" in t.issues[0].message


@pytest.mark.parametrize(
    ("header", "subscription", "suspended"),
    [
        ("Webex Calling [Sub123]", "Sub123", False),
        ("Webex Calling (Suspended)", None, True),
        ("Webex Calling [Sub123] (Suspended)", "Sub123", True),
        ("webex calling (suspended)  [Sub9]", "Sub9", True),
    ],
)
def test_suffixes(header: str, subscription: str | None, suspended: bool) -> None:
    columns, issues = match_columns(["Email", header], default())
    col = columns[1]
    assert (col.kind, col.key, col.subscription, col.suspended) == (
        "package",
        "webex_calling",
        subscription,
        suspended,
    )
    assert (col.header, issues) == (header, [])


def test_same_package_other_subscription_is_no_duplicate() -> None:
    header = ["Email", "Webex Calling [Sub1]", "Webex Calling [Sub2]", "Webex Calling [Sub1]"]
    _, issues = match_columns(header, default())
    assert triples(issues) == [(None, "Webex Calling [Sub1]", "duplicate_column", "error")]


def test_split_suffixes_and_letters() -> None:
    assert split_suffixes("User ID/Email (Required)") == ("User ID/Email (Required)", None, False)
    assert [column_letter(i) for i in (0, 25, 26, 701, 16383)] == ["A", "Z", "AA", "ZZ", "XFD"]


class CustomerCatalog:
    """A second catalogue shape (customers): the reader only needs the protocol."""

    key_field = "name"

    def match_header(self, header: str) -> tuple[str, str | None] | None:
        return {"customer name": ("field", "name"), "country": ("field", "country")}.get(
            header.casefold()
        )

    def header_of(self, key: str) -> str:
        return {"name": "Customer Name", "country": "Country"}[key]


def test_other_catalogue(tmp_path: Path) -> None:
    path = write(tmp_path, "Country;Customer Name\nDE;Acme\n")
    t = read_table(path, Options(), CustomerCatalog())
    assert [c.key for c in t.columns] == ["country", "name"]
    with pytest.raises(FileRejected) as caught:
        read_table(write(tmp_path, "Country\nDE\n"), Options(), CustomerCatalog())
    assert [(i.column, i.code) for i in caught.value.issues] == [
        ("Customer Name", "missing_column")
    ]


# --------------------------------------------------------------------------- XLSX


def test_xlsx_first_visible_sheet_and_values(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["Email", "Extension", "Phone Number", "Title", "Jabber Calling", "Department"],
        ["a@b.c", 1001, 447700900123, " '=x ", True, dt.date(2024, 1, 2)],
        [None, None, None, None, None, None],
        ["b@b.c", "0042", "+4930123", 1.5, False, 1e-7],
    ]
    path = xlsx(tmp_path, {"Notes": [["hidden"]], "Users": rows}, hidden=("Notes",))
    t = read_table(path, Options())
    assert (t.kind, t.sheet, t.encoding, t.delimiter) == ("xlsx", "Users", None, None)
    assert cells(t.frame) == {
        2: ["a@b.c", "1001", "447700900123", "=x", "TRUE", "2024-01-02"],
        4: ["b@b.c", "0042", "+4930123", "1.5", "FALSE", "1E-07"],
    }
    assert t.numeric is not None and t.numeric.shape == t.frame.shape
    assert cells(t.numeric) == {
        2: [False, True, True, False, False, False],
        4: [False, False, False, True, False, True],
    }


def test_xlsx_sheet_option(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"A": [["Email"], ["a@x"]], "B": [["Email"], ["b@x"], ["c@x"]]})
    assert cells(read_table(path, Options(sheet="B")).frame) == {2: ["b@x"], 3: ["c@x"]}
    assert read_table(path, Options()).sheet == "A"
    assert rejected(path, sheet="Nope") == [(None, "", "unreadable_file")]
    with pytest.raises(FileRejected, match="'A', 'B'"):
        read_table(path, Options(sheet="Nope"))


def test_xlsx_limits(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"Users": [["Email"], ["a@x"], ["b@x"], [None], ["c@x"]]})
    assert rejected(path, max_rows=2) == [(None, "", "too_many_rows")]
    assert len(read_table(path, Options(max_rows=3)).frame) == 3
    assert rejected(path, max_bytes=100) == [(None, "", "file_too_large")]
    assert rejected(xlsx(tmp_path, {"Users": [["Email"]]})) == [(None, "", "empty_file")]


def test_cell_text() -> None:
    assert [cell_text(v) for v in (1001.0, 7, -0.0, 0.30000000000000004, 4.477e20)] == [
        "1001",
        "7",
        "0",
        "0.3",
        "4.477E+20",
    ]
    assert cell_text(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert (cell_text(None), cell_text(True), cell_text(dt.time(3, 4))) == ("", "TRUE", "03:04:00")


def test_not_a_workbook(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "Email\na@b\n", "users.xlsx")) == [
        (None, "", "unreadable_file")
    ]
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)
    assert rejected(write(tmp_path, ole, "users.xls")) == [(None, "", "unreadable_file")]


def test_xlsx_with_dtd_is_rejected(tmp_path: Path) -> None:
    good = xlsx(tmp_path, {"Users": [["Email"], ["a@b.c"]]})
    name, part = sheet_part(good)
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
    evil = rewrite_zip(
        good, tmp_path / "evil.xlsx", {name: bomb + re.sub(rb"^<\?xml[^>]*\?>", b"", part)}
    )
    assert rejected(evil) == [(None, "", "unreadable_file")]


def test_xlsx_zip_bomb_is_rejected(tmp_path: Path) -> None:
    good = xlsx(tmp_path, {"Users": [["Email"], ["a@b.c"]]})
    evil = rewrite_zip(good, tmp_path / "bomb.xlsx", {"xl/media/pad.bin": bytes(20 * 1024 * 1024)})
    assert rejected(evil) == [(None, "", "unreadable_file")]
    with pytest.raises(FileRejected, match="compressed more than 100:1"):
        read_table(evil, Options())


def test_xlsx_total_unpacked_size_is_bounded(tmp_path: Path) -> None:
    good = xlsx(tmp_path, {"Users": [["Email"], ["a@b.c"]]})
    pads = {f"xl/media/pad{i}.bin": bytes(900_000) for i in range(10)}  # each below the ratio check
    big = rewrite_zip(good, tmp_path / "big.xlsx", pads)
    assert len(read_table(big, Options()).frame) == 1
    assert rejected(big, max_bytes=big.stat().st_size) == [(None, "", "unreadable_file")]
    with pytest.raises(FileRejected, match="unpacks to 9,"):
        read_table(big, Options(max_bytes=big.stat().st_size))


def test_xlsx_bogus_dimension_is_ignored(tmp_path: Path) -> None:
    good = xlsx(tmp_path, {"Users": [["Email"], ["a@b.c"]]})
    name, part = sheet_part(good)
    part = re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:XFD1048576"/>', part)
    assert b"XFD1048576" in part
    t = read_table(rewrite_zip(good, tmp_path / "dim.xlsx", {name: part}), Options())
    assert (t.frame.shape, t.header) == ((1, 1), ["Email"])


@pytest.mark.parametrize("ref", ["XFD1048576", "CV1000000", "A99999999"])
def test_xlsx_far_away_cell_is_rejected_not_allocated(tmp_path: Path, ref: str) -> None:
    good = xlsx(tmp_path, {"Users": [["Email"], ["a@b.c"]]})
    name, part = sheet_part(good)
    cell = f'<row><c r="{ref}" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'.encode()
    evil = rewrite_zip(good, tmp_path / "far.xlsx", {name: part.replace(b"</sheetData>", cell)})
    assert rejected(evil) == [(None, "", "unreadable_file")]


# --------------------------------------------------------------------------- misc


def test_sha256_of(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    assert sha256_of(write(tmp_path, data)) == hashlib.sha256(data).hexdigest()


def test_raw_table_shape(tmp_path: Path) -> None:
    raw = read_raw(write(tmp_path, "a;b\n1;2\n"), Options())
    assert isinstance(raw, RawTable)
    assert (raw.header, raw.delimiter, raw.kind, raw.sheet, raw.numeric) == (
        ["a", "b"],
        ";",
        "csv",
        None,
        None,
    )


_EDGE_CHARS = "aøüéØ€😀" + "".join(sorted(set(TRIM_CHARS)))


@given(st.lists(st.text(alphabet=_EDGE_CHARS, max_size=4), min_size=1, max_size=8))
def test_may_need_trim_is_exact(cells: list[str]) -> None:
    """The byte-level check says "trim" exactly when some cell starts or ends with a trim
    character (a false "no" would keep padding; a false "yes" costs a copy of the column)."""
    column = pa.array(cells, type=pa.large_string())
    expected = any(c != c.strip(TRIM_CHARS) for c in cells)
    assert read_mod._may_need_trim(column) == expected
