"""Every file the engine writes for people: reports, exports and templates.

Decisions:
* CSV reports are UTF-8 with a BOM and use the input's delimiter (a comma for XLSX input), so
  a double click opens them right in the admin's spreadsheet (SPEC section 7).
* Every cell a spreadsheet would evaluate as a formula is neutralised with a leading ``'``
  (OWASP CSV injection): it starts with ``=``, ``@``, tab or CR, or with ``+``/``-`` followed
  by anything but a plain number. The reader drops that quote again, so a report can be fixed
  and uploaded as it is.
* XLSX outputs are written by openpyxl with every cell as an explicit string.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.worksheet.datavalidation import DataValidation

from csvimport.model import Table

PLAIN_NUMBER = r"[+-][0-9]+(?:[.,][0-9]+)?"  # +4930123456, -12, +1,5: data, not a formula
ISSUES_HEADER = ["Row Number", "User ID/Email", "Column", "Code", "Severity", "Message", "Value"]
ERRORS_HEADER = ["Row Number", "User ID/Email", "Error Message"]
# The column that names a row's record in issues.csv and errors.csv, per kind of file (SPEC 11).
KEY_HEADERS = {"users": "User ID/Email", "customers": "External Customer ID"}


def neutralise(value: str) -> str:
    """One cell made inert for a spreadsheet."""
    return "'" + value if _formula_like(value) else value


def _formula_like(value: str) -> bool:
    if not value:
        return False
    first = value[0]
    if first in "=@\t\r":
        return True
    if first in "+-":
        rest = value[1:].replace(",", ".", 1)
        return not (rest.replace(".", "", 1).isdigit() and rest[:1].isdigit())
    return False


def neutralise_series(values: pd.Series) -> pd.Series:
    """Vectorised ``neutralise`` for a column of text (RE2-compatible patterns, no look-ahead,
    so pandas runs them in Arrow instead of Python's ``re``)."""
    text = values.fillna("").astype("str")
    risky = text.str.contains(r"^[=@\t\r]", regex=True) | (
        text.str.contains(r"^[+-]", regex=True) & ~text.str.fullmatch(PLAIN_NUMBER)
    )
    return text.where(~risky, "'" + text)


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(neutralise_series)


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], delimiter: str = ","
) -> None:
    """A neutralised CSV report: UTF-8 with BOM, CRLF, minimal quoting."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow([neutralise(str(h)) for h in header])
        for row in rows:
            writer.writerow([neutralise("" if v is None else str(v)) for v in row])


def write_frame_csv(path: Path, frame: pd.DataFrame, header: Sequence[str], delimiter: str) -> None:
    """A large report from a DataFrame, neutralised column by column (vectorised)."""
    safe = neutralise_frame(frame.astype(object).fillna(""))
    safe.columns = [neutralise(h) for h in header]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        safe.to_csv(fh, sep=delimiter, index=False, lineterminator="\r\n")


def write_xlsx(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    dropdowns: dict[int, list[str]] | None = None,
    max_rows: int = 1000,
) -> None:
    """An XLSX with text cells; ``dropdowns`` maps a column index to its allowed values."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Users"
    ws.append([neutralise(str(h)) for h in header])
    for row in rows:
        ws.append([neutralise("" if v is None else str(v)) for v in row])
    for col, values in (dropdowns or {}).items():
        _add_dropdown(ws, col, values, max_rows)
    for cell in ws[1]:
        cell.number_format = "@"
    wb.save(path)


def _add_dropdown(ws: Any, col: int, values: list[str], max_rows: int) -> None:
    from openpyxl.utils import get_column_letter

    letter = get_column_letter(col + 1)
    listing = ",".join(v.replace(",", " ") for v in values)
    dv = DataValidation(type="list", formula1=f'"{listing}"', allow_blank=True)
    dv.add(f"{letter}2:{letter}{max_rows + 1}")
    ws.add_data_validation(dv)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_issues(
    path: Path, issues: pd.DataFrame, delimiter: str, key_header: str = ISSUES_HEADER[1]
) -> None:
    frame = issues[["row", "email", "column", "code", "severity", "message", "value"]].copy()
    frame["row"] = frame["row"].astype("Int64").astype(str).replace("<NA>", "")
    write_frame_csv(path, frame, _keyed(ISSUES_HEADER, key_header), delimiter)


def _keyed(header: list[str], key_header: str) -> list[str]:
    """``header`` with its record column (the second) named ``key_header``."""
    return [header[0], key_header, *header[2:]]


def joined_errors(issues: pd.DataFrame) -> pd.DataFrame:
    """One line per rejected row with its error messages joined (Control Hub's errors.csv).

    Rows with a single error (nearly all) are taken as they are; only rows with several go
    through a group-by, whose per-group Python join cost a second at 50k rejected rows."""
    errs = issues.loc[
        (issues["severity"] == "error") & issues["row"].notna(), ["row", "email", "message"]
    ]
    if errs.empty:
        return pd.DataFrame(columns=["row", "email", "message"])
    several = errs["row"].duplicated(keep=False).to_numpy()
    grouped = (
        errs[several]
        .groupby("row", sort=False)
        .agg(email=("email", "first"), message=("message", " | ".join))
        .reset_index()
    )
    out = pd.concat([errs[~several], grouped], ignore_index=True)
    return out.sort_values("row", kind="stable").reset_index(drop=True)


def write_errors(
    path: Path,
    issues: pd.DataFrame,
    errors: pd.DataFrame,
    delimiter: str,
    file_rejected: bool,
    key_header: str = ERRORS_HEADER[1],
) -> None:
    """``errors.csv``: per rejected row, or per file-level error when the file was refused."""
    if file_rejected:
        errs = issues[(issues["severity"] == "error") & issues["row"].isna()]
        frame = pd.DataFrame({"row": "", "email": "", "message": errs["message"].to_numpy()})
    else:
        frame = errors.copy()
        frame["row"] = frame["row"].astype("int64").astype(str)
    header = _keyed(ERRORS_HEADER, key_header)
    write_frame_csv(path, frame[["row", "email", "message"]], header, delimiter)


def write_rejected(
    directory: Path, table: Table, errors: pd.DataFrame, delimiter: str
) -> Path | None:
    """The rejected rows exactly as uploaded plus a last column ``Errors``; None when none."""
    if errors.empty:
        return None
    rows = table.frame.loc[errors["row"].astype("int64").to_numpy()].copy()
    rows["__errors"] = errors["message"].to_numpy()
    header = [*table.header, "Errors"]
    if table.kind == "xlsx":
        path = directory / "rejected.xlsx"
        write_xlsx(path, header, rows.itertuples(index=False, name=None))
    else:
        path = directory / "rejected.csv"
        write_frame_csv(path, rows, header, delimiter)
    return path
