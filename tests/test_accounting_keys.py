"""The org rules give the same issues whether numbers and extensions are looked up by
integer key (``digitkeys``) or as text.

Orgs and files here hold what has no key: numbers and extensions with letters, non-ASCII
digits, 16+ digits, blanks, leading zeros and "+" that only differ in that, locations in
several spellings. Each case is checked twice, once as shipped and once with every lookup
forced onto the text path, and the issues (row, column, code, message, order) must agree.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import org_settings, users_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvimport import accounting, catalog, rules
from csvimport import plan as planning
from csvimport.issues import IssueBuilder
from csvimport.model import Options
from csvimport.read import read_table
from csvimport.store.snapshot import OrgSnapshot
from csvimport.validate import validate

CAT = catalog.default()
PHONES = ["", "+4930100", "+4930100", "4930100", "+04930100", "+49 30 101", "+4930102", "+1"]
ODD_PHONES = ["+4930a", "+٣٣", "+" + "1" * 16, "1" * 18, "0049", "0", "+0", "00"]
EXTENSIONS = ["", "100", "0100", "00100", "101", "1", "01", "7" * 15]
ODD_EXTENSIONS = ["100a", "٣", "1" * 16, "x", "+1"]
PLACES = ["HQ", "hq", "Berlin", "BERLIN", ""]


def _pick(rng: random.Random, common: list[str], odd: list[str], odd_share: float) -> str:
    return rng.choice(odd if rng.random() < odd_share else common)


def _org(rng: random.Random, size: int, odd_share: float) -> OrgSnapshot:
    frame = users_frame(
        [
            {
                "email": f"u{i}@acme.example",
                "first_name": "Anna",
                "phone_number": _pick(rng, PHONES, ODD_PHONES, odd_share),
                "extension": _pick(rng, EXTENSIONS, ODD_EXTENSIONS, odd_share),
                "location": rng.choice(PLACES),
                "role": "user",
                "package": rng.choice(list(CAT.packages)),
            }
            for i in range(size)
        ]
    )
    numbers = sorted({p.replace(" ", "") for p in PHONES if p} | {"+4930103"})
    if rng.random() < odd_share:
        numbers.append(rng.choice(ODD_PHONES))
    settings_ = org_settings(
        default_licenses=("basic_messaging",), verified_domains=("acme.example",)
    )
    return OrgSnapshot(
        settings=settings_,
        users=frame,
        licenses=pd.DataFrame({"email": [], "license": []}, dtype="str"),
        pools=pd.DataFrame(
            columns=["id", "license", "quantity", "status", "order", "subscription", "used"]
        ),
        numbers=pd.DataFrame({"number": numbers, "location": "HQ", "email": ""}).astype("str"),
        locations=frozenset(["HQ", "Berlin"]),
        sites=frozenset(["a.webex.com"]),
    )


def _file(rng: random.Random, snap: OrgSnapshot, count: int, odd_share: float) -> str:
    lines = ["User ID/Email (Required),Extension,Phone Number,Location,Webex Calling"]
    emails = list(snap.users.index)
    for i in range(count):
        email = rng.choice([*rng.sample(emails, 2), f"new{i}@acme.example"])
        ext = _pick(rng, EXTENSIONS, ODD_EXTENSIONS, odd_share)
        phone = _pick(rng, PHONES, ODD_PHONES, odd_share)
        package = rng.choice(["TRUE", "TRUE", "FALSE"])
        lines.append(f"{email},{ext},{phone},{rng.choice(PLACES)},{package}")
    return "\n".join(lines) + "\n"


def _issues(snap: OrgSnapshot, text: str, tmp: Path) -> pd.DataFrame:
    path = tmp / "users.csv"
    path.write_text(text, encoding="utf-8")
    table = read_table(path, Options(file=path, org="acme", mode="add-remove"), CAT)
    v = validate(table, CAT, "add-remove", current=snap.users)
    rows = planning.classify(v, snap, CAT, "add-remove")
    email = v.cells["email"] if "email" in v.cells else pd.Series("", index=v.cells.index)
    b = IssueBuilder(v.cells, v.headers, email)
    rules.check(rows, b)
    every = accounting.check(rows, rows.index)
    first = planning._valid_rows(rows, pd.concat([v.issues, b.frame()]))
    return pd.concat([b.frame(), every, accounting.check(rows, first)], ignore_index=True)


@given(seed=st.integers(0, 2**32 - 1), odd_share=st.sampled_from([0.0, 0.05, 0.4]))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_keys_and_texts_give_the_same_issues(
    seed: int, odd_share: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    snap = _org(rng, rng.choice([5, 20, 50]), odd_share)
    text = _file(rng, snap, rng.choice([5, 30]), odd_share)
    keyed = _issues(snap, text, tmp_path)
    with monkeypatch.context() as m:
        for module in (rules, accounting):
            m.setattr(module, "all_keyed", lambda keys: None)
        as_text = _issues(snap, text, tmp_path)
    pd.testing.assert_frame_equal(keyed, as_text)


def test_numbers_that_differ_in_zeros_or_plus_do_not_clash(tmp_path: Path) -> None:
    """The org's user keeps "+4930100"; rows take "4930100", "+04930100" and "+4930100":
    only the last one is that number."""
    snap = _org(random.Random(0), 3, 0.0)
    users = snap.users.copy()
    users["phone_number"] = ["+4930100", "", ""]
    users["extension"] = ["0100", "", ""]
    users["location"] = ["HQ", "HQ", "HQ"]
    snap = OrgSnapshot(**{**snap.__dict__, "users": users})
    lines = [
        "User ID/Email (Required),Extension,Phone Number,Location,Webex Calling",
        "u1@acme.example,100,4930100,hq,TRUE",
        "u2@acme.example,00100,+04930100,HQ,TRUE",
        "new@acme.example,0100,+4930100,hq,TRUE",
    ]
    issues = _issues(snap, "\n".join(lines) + "\n", tmp_path)
    clash = issues[issues["code"].isin(["number_in_use", "extension_in_use"])]
    assert sorted(set(zip(clash["row"], clash["code"], strict=True))) == [
        (4, "extension_in_use"),
        (4, "number_in_use"),
    ]


def test_located_keys_fall_back_when_a_place_holds_a_nul_or_codes_do_not_fit() -> None:
    """A NUL in a location name would let a text key split differently than its parts;
    15-digit extensions leave no room for a location's code."""
    where = np.ones(2, dtype=bool)

    def side(places: list[str], extensions: list[str]) -> accounting._Located:
        return pd.Series(places, dtype="str"), pd.Series(extensions, dtype="str"), where

    plain = accounting._located_keys(side(["HQ", "hq"], ["1", "2"]), side(["Oslo", ""], ["1", "3"]))
    assert plain is not None
    assert plain[0][0] != plain[1][0]  # HQ/1 is not Oslo/1
    nul = accounting._located_keys(side(["H\x00Q", "x"], ["1", "2"]), side(["a", "b"], ["1", "2"]))
    assert nul is None
    long = "9" * 15
    full = accounting._located_keys(side(["a", "b"], [long, "1"]), side(["a", "b"], ["1", "2"]))
    assert full is None
    odd = accounting._located_keys(side(["a", "b"], ["1", "2"]), side(["a", "b"], ["1", "2a"]))
    assert odd is None
