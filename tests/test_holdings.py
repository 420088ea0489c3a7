"""Which rows' users hold each license (``plan._holdings``): the positions a snapshot carries
give the same masks as looking the license emails up, and positions never outlive the
frames they were found for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import org_settings
from hypothesis import given
from hypothesis import strategies as st

from csvimport.plan import ORG_USER_COLUMNS, _holdings
from csvimport.store.snapshot import OrgSnapshot, holder_positions

EMAILS = [f"u{i}@x.example" for i in range(8)]
LICENSES = ["basic_messaging", "call_on_webex", "miteam_meetings"]
SETTINGS = org_settings()


def org(users: list[str], licenses: list[tuple[str, str]]) -> OrgSnapshot:
    """An org of ``users`` (in that order) and ``licenses`` rows (in that order); the license
    rows' user positions are not carried."""
    frame = pd.DataFrame(
        {c: pd.Series([""] * len(users), dtype="str") for c in ORG_USER_COLUMNS},
    )
    frame.index = pd.Index(pd.Series(users, dtype="str"), name="email")
    lics = pd.DataFrame(
        {
            "email": pd.Series([e for e, _ in licenses], dtype="str"),
            "license": pd.Series([lic for _, lic in licenses], dtype="str"),
        }
    )
    empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in ("number", "location", "email")})
    return OrgSnapshot(
        settings=SETTINGS,
        users=frame,
        licenses=lics,
        pools=pd.DataFrame(),
        numbers=empty,
        locations=frozenset(),
        sites=frozenset(),
    )


def carried(snap: OrgSnapshot) -> OrgSnapshot:
    """The same org, its license rows' user positions carried as ``load_snapshot`` does."""
    out = replace(snap)
    out.carry_holders(holder_positions(out.users, out.licenses))
    return out


def expected(at: np.ndarray, snap: OrgSnapshot) -> dict[str, list[bool]]:
    """Plain Python: each row's user, by email, and the pairs it holds."""
    pairs = set(zip(snap.licenses["email"], snap.licenses["license"], strict=True))
    emails = list(snap.users.index)
    return {
        lic: [a >= 0 and (emails[a], lic) in pairs for a in at]
        for lic in sorted(set(snap.licenses["license"]))
    }


def as_lists(masks: dict[str, np.ndarray]) -> dict[str, list[bool]]:
    return {lic: [bool(x) for x in mask] for lic, mask in sorted(masks.items())}


orgs = st.tuples(
    st.permutations(EMAILS).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n])),
    st.lists(st.tuples(st.sampled_from(EMAILS), st.sampled_from(LICENSES)), max_size=25),
    st.lists(st.integers(-1, len(EMAILS) - 1), min_size=1, max_size=12),
)


@given(orgs)
def test_carried_positions_give_the_masks_of_a_lookup(
    case: tuple[list[str], list[tuple[str, str]], list[int]],
) -> None:
    """Users in any order, some without licenses; license rows unsorted, duplicated, some of
    emails that are no user; rows about no user, and users about whom no row is."""
    users, licenses, picks = case
    snap = org(users, licenses)
    at = np.array([p if p < len(users) else -1 for p in picks], dtype=np.int64)
    with_positions = carried(snap)
    assert with_positions.license_holders() is not None and snap.license_holders() is None
    want = expected(at, snap)
    assert as_lists(_holdings(at, with_positions)) == want
    assert as_lists(_holdings(at, snap)) == want


def test_positions_point_at_each_license_rows_user() -> None:
    snap = carried(org(["b@x", "a@x", "c@x"], [("c@x", "x"), ("z@x", "x"), ("a@x", "y")]))
    assert list(snap.license_holders()) == [2, -1, 1]  # type: ignore[arg-type]
    assert snap.license_holders().dtype == np.int32  # type: ignore[union-attr]


def test_narrowing_the_users_keeps_the_positions() -> None:
    snap = carried(org(EMAILS[:3], [(EMAILS[2], "x"), (EMAILS[0], "y")]))
    narrow = snap.narrowed(["role"])
    assert list(narrow.users.columns) == ["role"]
    assert np.array_equal(narrow.license_holders(), [2, 0])  # type: ignore[arg-type]


def test_positions_are_not_read_once_the_frames_changed() -> None:
    """Reordered, filtered or emptied users (or licenses): a lookup, never stale positions."""
    users = EMAILS[:4]
    licenses = [(EMAILS[3], "x"), (EMAILS[0], "x"), (EMAILS[1], "y")]
    snap = carried(org(users, licenses))
    at = np.array([0, 1, 2, 3, -1], dtype=np.int64)
    reordered = carried(org(users, licenses))
    reordered.users = reordered.users.iloc[::-1]  # positions at[] now count from the end
    assert reordered.license_holders() is None
    assert as_lists(_holdings(at, reordered)) == expected(at, reordered)
    assert replace(snap).license_holders() is None  # e.g. the planner letting frames go
    assert replace(snap, users=snap.users.iloc[:2]).license_holders() is None
    fewer = carried(org(users, licenses))
    fewer.licenses = fewer.licenses.iloc[1:].reset_index(drop=True)
    assert fewer.license_holders() is None
    assert as_lists(_holdings(at, fewer)) == expected(at, fewer)


@pytest.mark.parametrize(
    "positions",
    [
        np.array([0, 1], dtype=np.int64),  # not int32
        np.array([0], dtype=np.int32),  # one per license row
        np.array([0, 3], dtype=np.int32),  # past the users
        np.array([0, -2], dtype=np.int32),
    ],
)
def test_positions_that_cannot_fit_are_refused(positions: np.ndarray) -> None:
    snap = org(EMAILS[:3], [(EMAILS[0], "x"), (EMAILS[1], "x")])
    with pytest.raises(ValueError):
        snap.carry_holders(positions)
    assert snap.license_holders() is None
