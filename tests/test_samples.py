"""Every sample file produces exactly the ``(row, column, code)`` list beside it.

``samples/`` is what ``make run`` shows a newcomer, so it must stay true: a clean file, one
holding every no-org row-level code, one per file-level rejection, an XLSX, a German-Excel
file and a UTF-16 file. The two size limits are options, so they are exercised here on
``rows.csv`` with small limits.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from csvimport import engine
from csvimport.model import Options

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _sample_of(expected: Path) -> Path:
    """``x.expected.csv`` belongs to ``x`` (e.g. ``users.xlsx``) or to ``x.<ext>``."""
    base = expected.name.removesuffix(".expected.csv")
    exact = expected.with_name(base)
    if exact.exists():
        return exact
    return next(
        p for p in expected.parent.glob(base + ".*") if not p.name.endswith(".expected.csv")
    )


EXPECTED = {_sample_of(e): e for e in SAMPLES.rglob("*.expected.csv")}
FILES = sorted(EXPECTED)


def _expected(path: Path) -> set[tuple[str, str, str]]:
    with EXPECTED[path].open(encoding="utf-8") as fh:
        return {(r["row"], r["column"], r["code"]) for r in csv.DictReader(fh)}


def _found(options: Options) -> set[tuple[str, str, str]]:
    result = engine.run(options)
    return {
        ("" if str(r.row) == "<NA>" else str(r.row), r.column, r.code)
        for r in result.issues.itertuples()
    }


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SAMPLES)) for p in FILES])
def test_sample_gives_its_expected_issues(path: Path) -> None:
    assert _found(Options(file=path)) == _expected(path)


def test_samples_cover_every_no_org_code() -> None:
    codes = {code for path in FILES for _, _, code in _expected(path)}
    wanted = {
        "unreadable_file",
        "empty_file",
        "missing_column",
        "duplicate_column",
        "unknown_column",
        "missing_email",
        "invalid_email",
        "duplicate_email",
        "invalid_boolean",
        "multiple_packages",
        "missing_required_field",
        "missing_preferred_site",
        "invalid_name",
        "invalid_phone",
        "number_mangled",
        "invalid_extension",
        "duplicate_phone",
        "duplicate_extension",
        "suspended_license",
        "delete_requires_remove_mode",
    }
    assert wanted <= codes, sorted(wanted - codes)


def test_size_limits_reject_the_file() -> None:
    rows = SAMPLES / "errors" / "rows.csv"
    assert _found(Options(file=rows, max_rows=3)) == {("", "", "too_many_rows")}
    assert _found(Options(file=rows, max_bytes=100)) == {("", "", "file_too_large")}


def test_clean_sample_is_clean_against_its_org(tmp_path: Path) -> None:
    from csvimport.store.db import connect
    from csvimport.store.orgfile import load_org_file

    db = connect(f"sqlite:///{tmp_path / 's.db'}")
    load_org_file(db, SAMPLES / "consumer.yaml")
    load_org_file(db, SAMPLES / "org.yaml")
    result = engine.run(Options(file=SAMPLES / "users.csv", org="acme"), db=db)
    assert result.exit_code == 0, result.issues.to_dict("records")
    assert result.operations["add_user"] > 0 and result.operations["modify_user"] > 0
