"""Reports (SPEC 7): exact columns, formula neutralising, round trip of rejected rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest

from csvimport import engine, report
from csvimport.model import Options
from csvimport.read import read_raw

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "@SUM(1)",
    "-2+3+cmd|'/C calc'!A0",
    "+1+1",
    "\tTAB",
    "\rCR",
]
HEADER = "First Name,Last Name,User ID/Email (Required),Phone Number,Title"


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_like_cells_are_neutralised(value: str) -> None:
    assert report.neutralise(value) == "'" + value
    assert list(report.neutralise_series(__import__("pandas").Series([value]))) == ["'" + value]


@pytest.mark.parametrize("value", ["+4930123456", "-12", "1.5", "Anna", "", "a=b", "+49,5"])
def test_plain_values_stay(value: str) -> None:
    assert report.neutralise(value) == value


def _write(path: Path, rows: list[str], encoding: str = "utf-8") -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding=encoding)
    return path


def _cells(path: Path, delimiter: str = ",") -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def test_no_report_cell_would_run_as_a_formula(tmp_path: Path) -> None:
    quoted = ['"' + v.replace('"', '""') + '"' for v in HOSTILE]
    rows = [f"{q},Berg,bad-email-{i},+4930123456,{q}" for i, q in enumerate(quoted)]
    src = _write(tmp_path / "in.csv", rows)
    out = tmp_path / "rep"
    engine.run(Options(file=src, report_dir=out))
    for name in ("issues.csv", "errors.csv", "rejected.csv"):
        for line in _cells(out / name):
            for cell in line:
                assert not cell or cell[0] not in "=@\t\r", (name, cell)
                if cell[:1] in "+-":
                    assert cell[1:].replace(".", "", 1).isdigit(), (name, cell)
    rejected = _cells(out / "rejected.csv")
    assert rejected[1][3] == "+4930123456"  # a phone number is written as it is


def test_neutralised_rejected_file_reads_back_to_the_original(tmp_path: Path) -> None:
    rows = [
        f'"{v.replace(chr(34), chr(34) * 2)}",Berg,bad{i},+4930123456,x'
        for i, v in enumerate(HOSTILE[:4])
    ]
    src = _write(tmp_path / "in.csv", rows)
    out = tmp_path / "rep"
    engine.run(Options(file=src, report_dir=out))
    original = read_raw(src, Options()).frame
    again = read_raw(out / "rejected.csv", Options()).frame
    assert again.iloc[:, :5].values.tolist() == original.values.tolist()
    assert list(again.index) == list(original.index)


def test_report_files_and_summary_shape(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "sep=;\n"
        + HEADER.replace(",", ";")
        + "\nAnna;Berg;bad;+4930123456;x\nBo;B;bo@acme.example;;\n",
        encoding="cp1252",
    )
    out = tmp_path / "rep"
    result = engine.run(Options(file=src, report_dir=out))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary) == {
        "job_id",
        "file",
        "sha256",
        "org",
        "mode",
        "dry_run",
        "encoding",
        "delimiter",
        "status",
        "rows",
        "operations",
        "issues",
        "state_version",
        "timings",
    }
    assert summary["rows"] == {
        "total": 2,
        "valid": 1,
        "rejected": 1,
        "unchanged": 0,
        "with_warnings": 0,
    }
    assert (
        summary["delimiter"] == ";" and summary["org"] is None and summary["state_version"] is None
    )
    assert set(summary["operations"]) == {
        "add_user",
        "modify_user",
        "delete_user",
        "claim_user",
        "assign_license",
        "remove_license",
    }
    assert summary["status"] == "COMPLETED_WITH_ERRORS" and result.exit_code == 1
    raw = (out / "issues.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    issues = _cells(out / "issues.csv", ";")
    assert issues[0] == [
        "Row Number",
        "User ID/Email",
        "Column",
        "Code",
        "Severity",
        "Message",
        "Value",
    ]
    assert issues[1][:5] == ["2", "bad", "User ID/Email (Required)", "invalid_email", "error"]
    errors = _cells(out / "errors.csv", ";")
    assert errors[0] == ["Row Number", "User ID/Email", "Error Message"] and errors[1][0] == "2"
    rejected = _cells(out / "rejected.csv", ";")
    assert rejected[0] == [*HEADER.split(","), "Errors"] and rejected[1][:3] == [
        "Anna",
        "Berg",
        "bad",
    ]


def test_rejected_file_gets_every_report(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("First Name,Last Name\nAnna,Berg\n", encoding="utf-8")
    out = tmp_path / "rep"
    result = engine.run(Options(file=src, report_dir=out))
    assert result.exit_code == 3
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "REJECTED" and summary["sha256"]
    assert summary["rows"] == {
        "total": 0,
        "valid": 0,
        "rejected": 0,
        "unchanged": 0,
        "with_warnings": 0,
    }
    errors = _cells(out / "errors.csv")
    assert errors[1][0] == "" and "User ID/Email (Required)" in errors[1][2]
    assert not (out / "rejected.csv").exists()


def test_xlsx_input_gets_rejected_xlsx_with_text_cells(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER.split(","))
    ws.append(["=1+1", "Berg", "bad", "+4930123456", "@x"])
    src = tmp_path / "in.xlsx"
    wb.save(src)
    out = tmp_path / "rep"
    engine.run(Options(file=src, report_dir=out))
    back = openpyxl.load_workbook(out / "rejected.xlsx").active
    assert back is not None
    values = [c.value for c in back[2]]
    assert values[1:4] == ["Berg", "bad", "+4930123456"]
    assert all(not str(v).startswith(("=", "@")) for v in values if v)
    assert (out / "issues.csv").read_text(encoding="utf-8-sig").splitlines()[0].count(",") == 6


@pytest.mark.parametrize("as_text", [False, True], ids=["dict payloads", "JSON-text payloads"])
def test_plan_lines_match_json_dumps(as_text: bool) -> None:
    """The column-assembled plan lines (JSON-text payloads, as ``plan`` builds them) parse to
    exactly what ``json.dumps`` writes for dict payloads."""
    import pandas as pd

    from csvimport.planwrite import operation_dict, plan_lines

    ops = pd.DataFrame(
        {
            "op": ["add_user", "assign_license", "remove_license", "delete_user", "modify_user"],
            "row": [2, 2, 3, 4, 5],
            "email": ['Ann"a@x.example', 'Ann"a@x.example', "b\\o@x.example", "ø@x.example", "e@x"],
            "license": [None, "webex_calling", "basic_messaging", None, None],
            "data": [
                {"attributes": {"first_name": "Ann"}},
                None,
                None,
                None,
                {"changes": {"title": {"from": None, "to": "Dr."}}},
            ],
        }
    )
    expected = [operation_dict(op) for op in ops.to_dict("records")]
    if as_text:
        ops["data"] = [None if d is None else json.dumps(d) for d in ops["data"]]
    got = [json.loads(line) for line in plan_lines(ops)]
    assert got == expected
    assert got[1] == {
        "op": "assign_license",
        "row": 2,
        "email": 'Ann"a@x.example',
        "license": "webex_calling",
    }
    assert got[3] == {"op": "delete_user", "row": 4, "email": "ø@x.example"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("width", [1, 3])
def test_frame_csv_is_what_csv_writer_writes(tmp_path: Path, delimiter: str, width: int) -> None:
    """The Arrow writer quotes, doubles quotes and neutralises exactly like csv.writer."""
    import io
    import random

    import pandas as pd

    rng = random.Random(7)
    alphabet = [
        "a",
        " ",
        '"',
        ",",
        ";",
        "\t",
        "|",
        "\r",
        "\n",
        "=",
        "+",
        "-",
        "@",
        "'",
        "1",
        ".",
        "é",
    ]
    cells = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(300)]
    frame = pd.DataFrame({i: cells[i::width] for i in range(width)}, dtype=object)
    frame.iloc[0, 0] = None
    header = ["=h", *(f"h{i}" for i in range(1, width))]
    path = tmp_path / "out.csv"
    report.write_frame_csv(path, frame, header, delimiter)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([report.neutralise(h) for h in header])
    for row in (
        frame.astype(object).fillna("").apply(report.neutralise_series).itertuples(index=False)
    ):
        writer.writerow(list(row))
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected.getvalue().encode("utf-8")


def test_plan_file_lines_from_text_payloads_are_exact(tmp_path: Path) -> None:
    """plan.jsonl assembled from JSON-text payloads: an empty payload ``{}`` adds nothing, a
    payload is merged into the line, awkward emails and licenses are escaped, every line
    ends in a newline, and a slice of the plan (the writer works in chunks) is no different."""
    import pandas as pd

    from csvimport.model import Plan
    from csvimport.planwrite import operation_dict, write_plan

    ops = pd.DataFrame(
        {
            "op": ["add_user", "modify_user", "assign_license", "delete_user", "claim_user"],
            "row": [2, 3, 3, 4, 5],
            "email": ["tab\there@x", 'q"uote@x', "back\\slash@x", "ø@x", "e@x"],
            "license": [None, None, 'lic"ence', None, None],
            "data": [
                '{"attributes": {"first_name": "Å"}}',
                '{"changes": {"title": {"from": null, "to": "Dr."}}}',
                None,
                "{}",
                '{"attributes": {}}',
            ],
        }
    )
    for part in (ops, ops.iloc[1:4]):
        plan = Plan(org="o", mode="add-only", state_version=1, sha256="x", operations=part)
        path = tmp_path / "plan.jsonl"
        write_plan(path, plan)
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and text.count("\n") == len(part) + 1
        got = [json.loads(line) for line in text.splitlines()[1:]]
        want = [operation_dict(op) for op in part.to_dict("records")]
        assert got == want
    assert got[2] == {"op": "delete_user", "row": 4, "email": "ø@x"}
