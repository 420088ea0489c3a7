"""Reading the job's file ahead: the same bytes and hash as reading it in place, and nothing
read ahead that the engine must look at itself (too large, missing, not a file)."""

from __future__ import annotations

import codecs
import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from csvimport import engine as eng
from csvimport import prefetch as prefetch_mod
from csvimport.model import FileRejected, Options
from csvimport.prefetch import Prefetch
from csvimport.read import read_table

CSV = (
    "User ID/Email (Required),First Name,Location\n"
    "eve@acme.example,Eve,HQ\n"
    "not-an-email,Zoë,Berlin\n"
)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    path.write_bytes(CSV.encode("utf-8"))
    return path


def test_the_bytes_and_hash_are_the_files(users: Path) -> None:
    ahead = Prefetch(users, max_bytes=1 << 20)
    assert ahead.ready()
    assert (ahead.size, ahead.head) == (users.stat().st_size, users.read_bytes()[:8])
    assert ahead.take() == users.read_bytes()
    assert ahead.sha256() == hashlib.sha256(users.read_bytes()).hexdigest()
    with pytest.raises(RuntimeError, match="taken"):
        ahead.take()  # handed over once: the reader alone holds them


def test_bytes_taken_at_once_are_still_hashed(users: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader may take the bytes the moment they are read, before the hash starts: the
    hash is of those bytes all the same. (The thread is held right after it says the bytes
    are read, until the reader has taken them.)"""
    want = hashlib.sha256(users.read_bytes()).hexdigest()
    taken = threading.Event()

    class HeldAfterSet(threading.Event):
        def set(self) -> None:
            super().set()
            if sys._getframe(1).f_code.co_name == "_run":  # the prefetch's "read" signal
                taken.wait(5)

    monkeypatch.setattr(prefetch_mod.threading, "Event", HeldAfterSet)
    ahead = Prefetch(users, max_bytes=1 << 20)
    assert ahead.ready()
    assert ahead.take() == users.read_bytes()
    taken.set()
    assert ahead.sha256() == want


def test_bytes_nobody_took_are_released(users: Path) -> None:
    """An XLSX file is read by its own reader: the engine drops the bytes read ahead."""
    ahead = Prefetch(users, max_bytes=1 << 20)
    assert ahead.ready()
    ahead.release()
    with pytest.raises(RuntimeError, match="taken"):
        ahead.take()
    assert ahead.sha256() == hashlib.sha256(users.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", ["too large", "missing", "a folder"])
def test_nothing_is_read_ahead_that_the_engine_must_refuse(
    users: Path, tmp_path: Path, case: str
) -> None:
    path = {"too large": users, "missing": tmp_path / "nope.csv", "a folder": tmp_path}[case]
    limit = users.stat().st_size - 1 if case == "too large" else 1 << 20
    assert not Prefetch(path, max_bytes=limit).ready()


def test_a_job_read_ahead_reports_what_a_job_read_in_place_reports(
    users: Path, tmp_path: Path
) -> None:
    def run(prefetched: Prefetch | None, name: str) -> dict[str, str]:
        report = tmp_path / name
        options = Options(file=users, report_dir=report)
        result = eng.run(options, job_id="job", prefetched=prefetched)
        assert result.sha256 == hashlib.sha256(users.read_bytes()).hexdigest()
        summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
        summary.pop("timings")
        files = {p.name: p.read_text(encoding="utf-8") for p in report.iterdir()}
        return {**files, "summary.json": json.dumps(summary, sort_keys=True)}

    ahead = run(Prefetch(users, max_bytes=1 << 20), "ahead")
    assert ahead == run(None, "in-place")
    assert "invalid_email" in ahead["issues.csv"]


def test_a_file_too_large_is_still_refused_by_name(users: Path, tmp_path: Path) -> None:
    options = Options(file=users, report_dir=tmp_path / "r", max_bytes=10)
    result = eng.run(options, prefetched=Prefetch(users, max_bytes=10))
    assert result.exit_code == 3
    assert list(result.issues["code"]) == ["file_too_large"]


def test_the_command_line_starts_without_pandas() -> None:
    """The file is read ahead while pandas and SQLAlchemy are imported: neither may be
    imported by loading the command line itself."""
    code = "import sys, csvimport.cli; print(sorted({'pandas', 'sqlalchemy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_csv_is_parsed_on_the_read_ahead_thread(users: Path) -> None:
    ahead = Prefetch(users, max_bytes=1 << 20, parse=True)
    parsed = ahead.parsed()
    assert parsed is not None
    assert (parsed.table.num_rows, parsed.encoding, parsed.delimiter) == (3, "utf-8", ",")
    assert parsed.table.column("c1").to_pylist() == ["First Name", "Eve", "Zoë"]
    assert ahead.parsed() is None  # handed over once
    with pytest.raises(RuntimeError, match="taken"):
        ahead.take()  # the parse stands for the bytes: they are not kept
    assert (ahead.size, ahead.head) == (users.stat().st_size, users.read_bytes()[:8])
    assert ahead.sha256() == hashlib.sha256(users.read_bytes()).hexdigest()


# Files that each take another branch of the CSV read: encodings, an Excel ``sep=`` line, a
# delimiter to sniff, records only the Python parser reads, and files the read refuses.
FILES = {
    "utf-8": CSV.encode("utf-8"),
    "utf-8 with a BOM": codecs.BOM_UTF8 + CSV.encode("utf-8"),
    "cp1252": CSV.encode("cp1252"),
    "utf-16": CSV.encode("utf-16"),
    "sep line": b"sep=;\n" + CSV.replace(",", ";").encode("utf-8"),
    "semicolons": CSV.replace(",", ";").encode("utf-8"),
    "trailing empty fields": (CSV + "x@acme.example,X,HQ,,\n").encode("utf-8"),
    "a record too wide": (CSV + "x@acme.example,X,HQ,Oslo\n").encode("utf-8"),
    "NUL bytes": CSV.encode("utf-8") + b"\x00\n",
    "bad UTF-8 after a BOM": codecs.BOM_UTF8 + b"User ID/Email (Required)\n\xff\n",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_csv_parsed_ahead_reads_as_one_parsed_in_place(tmp_path: Path, name: str) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(FILES[name])
    options = Options(file=path)

    def read(prefetched: Prefetch | None) -> object:
        try:
            table = read_table(path, options, None, prefetched)
        except FileRejected as exc:
            return [(i.code, i.column, i.message) for i in exc.issues]
        return table.header, table.frame.to_dict("split"), table.encoding, table.delimiter

    ahead = Prefetch(path, max_bytes=1 << 20, parse=True)
    got = read(ahead)
    assert got == read(None)
    assert ahead.sha256() == hashlib.sha256(FILES[name]).hexdigest()
    refused = name in ("a record too wide", "NUL bytes", "bad UTF-8 after a BOM")
    assert isinstance(got, list) == refused  # the cases do reach both outcomes


@pytest.mark.parametrize("parse", [False, True])
def test_the_engine_drops_the_bytes_of_a_workbook(tmp_path: Path, parse: bool) -> None:
    """openpyxl reads the file itself: the bytes read ahead are not kept through the job."""
    from openpyxl import Workbook

    path = tmp_path / "users.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for line in CSV.splitlines():
        sheet.append(line.split(","))
    book.save(path)
    ahead = Prefetch(path, max_bytes=1 << 20, parse=parse)
    result = eng.run(Options(file=path), prefetched=ahead)
    assert result.rows.total == 2 and result.sha256 == ahead.sha256()
    with pytest.raises(RuntimeError, match="taken"):
        ahead.take()
