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

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.worksheet.datavalidation import DataValidation

from csvimport.model import Plan, Table

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


def write_plan(path: Path, plan: Plan) -> None:
    """``plan.jsonl``: a header line, then one operation per line (SPEC section 7)."""
    # A plan without an org (a customers file, SPEC 11) has no mode either.
    mode = plan.mode if plan.org is not None else None
    head = {
        "org": plan.org,
        "mode": mode,
        "state_version": plan.state_version,
        "sha256": plan.sha256,
    }
    lines = plan_lines(plan.operations)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"plan": head}, ensure_ascii=False) + "\n")
        for start in range(0, len(lines), 100_000):
            fh.write("".join(line + "\n" for line in lines[start : start + 100_000]))


def plan_lines(ops: pd.DataFrame) -> list[str]:
    """One JSON line per operation, in plan order.

    Operations without a payload (license assignments and removals, deletes: two thirds of a
    big plan) are assembled as strings column by column; the others go through ``json.dumps``.
    Same JSON either way (``test_plan_lines_match_json_dumps``)."""
    lines = np.empty(len(ops), dtype=object)
    if "external_id" in ops.columns or ops.empty:
        simple = np.zeros(len(ops), dtype=bool)
    else:
        simple = (ops["data"].isna() & ops["row"].notna()).to_numpy()
    if simple.any():
        lines[simple] = _simple_lines(ops[simple]).to_numpy()
    records = ops[~simple].to_dict("records")
    lines[~simple] = [
        json.dumps(operation_dict({str(k): v for k, v in op.items()}), ensure_ascii=False)
        for op in records
    ]
    return list(lines)


def _json_text(values: pd.Series) -> pd.Series:
    """JSON string literals for text without control characters (emails, license ids)."""
    text = values.astype("str").str.replace("\\", "\\\\", regex=False)
    return '"' + text.str.replace('"', '\\"', regex=False) + '"'


def _simple_lines(ops: pd.DataFrame) -> pd.Series:
    head = (
        '{"op": '
        + _json_text(ops["op"])
        + ', "row": '
        + ops["row"].astype("int64").astype("str")
        + ', "email": '
        + _json_text(ops["email"].fillna(""))
    )
    licensed = ops["license"].fillna("").astype("str")
    tail = (', "license": ' + _json_text(licensed) + "}").where(licensed != "", "}")
    return head + tail


def operation_dict(op: dict[str, Any]) -> dict[str, Any]:
    """One plan line: ``op``, ``row``, ``email`` and the op's own payload."""
    out: dict[str, Any] = {"op": op["op"], "row": _int_or_none(op["row"]), "email": op["email"]}
    for key in ("external_id",):
        if op.get(key):
            out[key] = op[key]
    license_id = op.get("license")
    if isinstance(license_id, str) and license_id:  # a missing license may arrive as NaN
        out["license"] = license_id
    data = op.get("data")
    if isinstance(data, dict):
        out.update(data)
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None
