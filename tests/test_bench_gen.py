"""The benchmark generator: deterministic, the requested size, and the promised overlap.

The benchmarks only mean something if their inputs are what they claim: the same bytes for the
same seed, every defect code present, and a users file that modifies about half, adds about a
third and leaves about a sixth of its rows unchanged against the org generated with it.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# bench/ is a top-level folder of the repository, not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import gen

SCHEMA = yaml.safe_load((Path(gen.SCHEMA)).read_text(encoding="utf-8"))
HEADER_TO_FIELD = {f["header"]: f["id"] for f in SCHEMA["fields"]}
PACKAGE_HEADERS = {p["header"]: p["id"] for p in SCHEMA["packages"]}
BOOLEAN_FIELDS = {"jabber_calling", "jabber_teams"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    gen.write_users(a, 500, seed=7, bad_fraction=0.1)
    gen.write_users(b, 500, seed=7, bad_fraction=0.1)
    gen.write_users(c, 500, seed=8, bad_fraction=0.1)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    o1, o2 = tmp_path / "o1.json", tmp_path / "o2.json"
    gen.write_org(o1, 200, seed=7)
    gen.write_org(o2, 200, seed=7)
    assert o1.read_bytes() == o2.read_bytes()


@pytest.mark.parametrize("rows", [1, 2, 137, 3000])
def test_row_count_and_canonical_header(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "u.csv"
    gen.write_users(path, rows, seed=1, bad_fraction=0.05)
    with path.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:16] == [f["header"] for f in SCHEMA["fields"]]
    assert header[16:22] == [p["header"] for p in SCHEMA["packages"]]
    assert len(_rows(path)) == rows


def test_clean_file_is_clean(tmp_path: Path) -> None:
    """No defects asked, none written: unique e-mails, phones and extensions per location."""
    path = tmp_path / "u.csv"
    gen.write_users(path, 5000, seed=3)
    rows = _rows(path)
    emails = [r["User ID/Email (Required)"].lower() for r in rows]
    assert len(set(emails)) == len(emails)
    phones = [r["Phone Number"] for r in rows if r["Phone Number"]]
    assert len(set(phones)) == len(phones)
    assert all(p.startswith(("+49", "+47", "+45")) and p[1:].isdigit() for p in phones)
    keys = [(r["Location"], r["Extension"]) for r in rows]
    assert len(set(keys)) == len(keys)
    for r in rows:
        assert sum(r[h] == "TRUE" for h in PACKAGE_HEADERS) == 1
        assert r["Jabber Calling"] in ("TRUE", "FALSE")


def test_every_defect_code_is_injected(tmp_path: Path) -> None:
    data = gen.write_users(tmp_path / "u.csv", 2000, seed=5, bad_fraction=0.05)
    assert len(data.defects) == 100
    assert set(data.defects.values()) == set(gen.DEFECTS)
    rows = _rows(tmp_path / "u.csv")
    for row, code in data.defects.items():
        cells = rows[row - 2]
        if code == "missing_email":
            assert cells["User ID/Email (Required)"] == ""
        if code == "multiple_packages":
            assert sum(cells[h] == "TRUE" for h in PACKAGE_HEADERS) == 2


def _org_users(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {u["email"]: u for u in data["users"]}


def _unchanged(row: dict[str, str], user: dict[str, Any]) -> bool:
    """Every non-blank field cell equals the org's value (blank means no change), and the
    package set TRUE is the one the user holds."""
    fields_equal = all(
        value == _as_cell(user, HEADER_TO_FIELD[header])
        for header, value in row.items()
        if value and header in HEADER_TO_FIELD
    )
    packages = [PACKAGE_HEADERS[h] for h, v in row.items() if h in PACKAGE_HEADERS and v == "TRUE"]
    return fields_equal and packages == [user["package"]]


def _as_cell(user: dict[str, Any], fid: str) -> str:
    value = user.get(fid, "")
    if fid in BOOLEAN_FIELDS:
        return "TRUE" if value else "FALSE"
    return str(value)


def test_users_overlap_org_in_the_intended_mix(tmp_path: Path) -> None:
    org_path, users_path = tmp_path / "org.json", tmp_path / "u.csv"
    gen.write_org(org_path, 3000, seed=11)
    data = gen.write_users(users_path, 2400, seed=11, org_users=3000)
    org = _org_users(org_path)
    rows = _rows(users_path)
    new = sum(r["User ID/Email (Required)"] not in org for r in rows)
    unchanged = sum(
        _unchanged(r, org[r["User ID/Email (Required)"]])
        for r in rows
        if r["User ID/Email (Required)"] in org
    )
    modified = len(rows) - new - unchanged
    assert abs(new / len(rows) - 1 / 3) <= 0.05
    assert abs(modified / len(rows) - 1 / 2) <= 0.05
    assert abs(unchanged / len(rows) - 1 / 6) <= 0.05
    assert sum(c == "unchanged" for c in data.category.tolist()) == unchanged
    # The plan can be clean: every number used is in the inventory, every location known.
    inventory = json.loads(org_path.read_text(encoding="utf-8"))
    numbers = {n["number"] for n in inventory["numbers"]}
    assert {r["Phone Number"] for r in rows if r["Phone Number"]} <= numbers
    locations = {loc["name"] for loc in inventory["locations"]}
    assert {r["Location"] for r in rows} <= locations
    assert all(p["quantity"] >= len(rows) for p in inventory["pools"])


def test_org_json_and_yaml_hold_the_same_org(tmp_path: Path) -> None:
    gen.write_org(tmp_path / "o.json", 120, seed=2)
    gen.write_org(tmp_path / "o.yaml", 120, seed=2)
    as_json = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    as_yaml = yaml.safe_load((tmp_path / "o.yaml").read_text(encoding="utf-8"))
    assert as_json == as_yaml
    assert as_json["org"]["id"] == "bench"
    assert sum(u["role"] == "full_admin" for u in as_json["users"]) == gen.ROLE_ADMINS
