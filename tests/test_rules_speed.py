"""The organisation rules against their plain definitions, on generated orgs that collide.

``rules`` and ``accounting`` are column code tuned for a million rows: they look up only the
rows that can fall (administrators, rows taking a number), locate the rows' users by their
positions when validation found them, and build keys only where needed. These tests restate
the rules of SPEC section 5 as plain Python loops over the same planning view and require
the same issues (row, column, code, in order) on small orgs full of collisions: numbers and
extensions held twice, swaps, deletions, administrators, pools one seat short or long, and
user positions that are missing, stale, or point into an org whose emails repeat.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import replace
from pathlib import Path

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
from csvimport.requirements import user_positions
from csvimport.store.snapshot import OrgSnapshot
from csvimport.validate import Validated, validate

CAT = catalog.default()
PACKAGES = list(CAT.packages)
PLACES = ["HQ", "Berlin", "Oslo"]
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
Issue = tuple[int, str, str]  # row, column header, code


def _org(rng: random.Random, size: int) -> OrgSnapshot:
    """``size`` users drawing numbers and extensions from small pools (so some are held
    twice), locations in several spellings, a few administrators, pools near their use."""
    numbers = [f"+4930{i:05d}" for i in range(max(4, size // 2))]
    frame = users_frame(
        [
            {
                "email": f"u{i}@acme.example",
                "first_name": "Anna",
                "phone_number": rng.choice(
                    ["", rng.choice(numbers), "+4930 " + rng.choice(numbers)[5:]]
                ),
                "extension": rng.choice(["", str(100 + rng.randint(0, size // 3)), "0101"]),
                "location": rng.choice([*PLACES, "hq", "BERLIN", ""]),
                "role": "full_admin" if rng.random() < rng.choice([0.03, 0.2]) else "user",
                "package": rng.choice([*PACKAGES, ""]),
            }
            for i in range(size)
        ]
    )
    licenses = pd.DataFrame(
        [(e, lic.id) for e in frame.index for lic in CAT.licenses.values() if rng.random() < 0.3],
        columns=["email", "license"],
    ).astype("str")
    pools: list[dict[str, object]] = []
    for lic in [*PACKAGES, *(lic.id for lic in CAT.product_licenses)]:
        used = int((frame["package"] == lic).sum()) + int((licenses["license"] == lic).sum())
        for _ in range(rng.choice([0, 1, 1, 2])):
            quantity = rng.choice([math.nan, 0.0, 2.0, float(max(used + rng.randint(-3, 3), 0))])
            pools.append(
                {
                    "id": len(pools) + 1,
                    "license": lic,
                    "quantity": quantity,
                    "status": rng.choice(["active", "active", "suspended"]),
                    "order": rng.choice(["", "ORD-1"]),
                    "subscription": rng.choice(["", "", "Sub123"]),
                    "used": used,
                }
            )
    pool_frame = pd.DataFrame(
        pools, columns=["id", "license", "quantity", "status", "order", "subscription", "used"]
    ).astype({"license": "str", "status": "str", "order": "str", "subscription": "str"})
    org = org_settings(
        package=rng.choice([*PACKAGES, None]),
        integrations=tuple(i for i in ("miteam_meetings", "micollab") if rng.random() < 0.5),
        default_licenses=("basic_messaging",),
        verified_domains=("acme.example",),
    )
    inventory = pd.DataFrame({"number": numbers, "location": "HQ", "email": ""}).astype("str")
    return OrgSnapshot(
        settings=org,
        users=frame,
        licenses=licenses,
        pools=pool_frame,
        numbers=inventory,
        locations=frozenset(PLACES),
        sites=frozenset(["a.webex.com"]),
    )


def _file(rng: random.Random, snap: OrgSnapshot, count: int) -> str:
    """Rows about existing users (often taking another user's number or extension, often
    deleting every package) and new users."""
    packages = [p for p in PACKAGES if rng.random() < 0.8]
    licenses = [lic.id for lic in CAT.licenses.values() if rng.random() < 0.6]
    header = ["User ID/Email (Required)", "Extension", "Phone Number", "Location"]
    header += ["Jabber Calling", "Jabber with Webex Teams", "Preferred Webex Site"]
    header += [CAT.header_of(p) + (" [Sub123]" if rng.random() < 0.2 else "") for p in packages]
    header += [CAT.header_of(lic) for lic in licenses]
    users = snap.users
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    deletes = rng.choice([0.05, 0.3])
    for i in range(count):
        other = users.iloc[rng.randrange(len(users))]
        email = rng.choice([*rng.sample(list(users.index), 2), f"new{i}@acme.example"])
        cells = [
            email,
            rng.choice(["", other["extension"], str(100 + rng.randint(0, 9))]),
            rng.choice(["", other["phone_number"], f"+4930{rng.randint(0, 9):05d}", "+4799"]),
            rng.choice(["", other["location"], "Nowhere"]),
            "TRUE",
            "TRUE",
            rng.choice(["a.webex.com", "b.webex.com"]),
        ]
        delete = rng.random() < deletes
        chosen = rng.choice([*packages, None]) if packages else None
        cells += ["FALSE" if delete else "TRUE" if p == chosen else "" for p in packages]
        cells += ["FALSE" if delete else rng.choice(["", "TRUE", "FALSE"]) for _ in licenses]
        writer.writerow(cells)
    return out.getvalue()


def _case(seed: int, tmp: Path) -> tuple[Validated, OrgSnapshot, str]:
    rng = random.Random(seed)
    snap = _org(rng, rng.choice([6, 20, 60]))
    mode = rng.choice(["add-only", "add-remove"])
    path = tmp / f"users{seed}.csv"
    path.write_text(_file(rng, snap, rng.choice([10, 40, 80])), encoding="utf-8")
    table = read_table(path, Options(file=path, org="acme", mode=mode), CAT)  # type: ignore[arg-type]
    return validate(table, CAT, mode, current=snap.users), snap, mode  # type: ignore[arg-type]


def _variants(v: Validated, snap: OrgSnapshot) -> list[tuple[Validated, OrgSnapshot]]:
    """As validated; without the rows' user positions; with positions into another order of
    the same users (stale); and an org listing every user twice (emails not unique)."""
    shuffled = replace(snap, users=snap.users.iloc[::-1])
    twice = replace(snap, users=pd.concat([snap.users, snap.users]).sort_index(kind="stable"))
    return [
        (v, snap),
        (replace(v, current_at=None), snap),
        (v, shuffled),
        (replace(v, current_at=user_positions(twice.users, v.email_key)), twice),
    ]


def _issues(frame: pd.DataFrame, codes: set[str]) -> list[Issue]:
    picked = frame[frame["code"].isin(codes)]
    return [
        (int(r), str(c), str(k))
        for r, c, k in zip(picked["row"], picked["column"], picked["code"], strict=True)
    ]


def _in_order(parts: list[list[Issue]]) -> list[Issue]:
    """Issues of the parts, by row, in part order within a row (the builder's order)."""
    return sorted((i for part in parts for i in part), key=lambda issue: issue[0])


# --- the rules as plain loops -----------------------------------------------------------------


def _in_use(rows: planning.Rows, ok: set[int], fid: str) -> list[Issue]:
    """A valid row taking a key (number, or location + extension) that another user keeps
    after the plan: a user keeps its key unless a valid row of that user releases it (deletes
    the user, or sets the key or the location); a key held twice counts for its first keeper."""
    if fid not in rows.values:
        return []
    users = rows.snap.users
    wanted = dict(zip(rows.index, rows.values[fid], strict=True))
    email = dict(zip(rows.index, rows.v.email_key, strict=True))
    if fid == "phone_number":
        held = list(planning.normalise_phone(users["phone_number"].astype(str)))
        key = dict(wanted)
        moves = {r: wanted[r] != "" for r in rows.index}
    else:
        held = [
            "" if ext == "" else f"{loc.casefold()}\x00{ext}"
            for loc, ext in zip(users["location"], users["extension"], strict=True)
        ]
        place = dict(zip(rows.index, rows.v.after["location"], strict=True))
        key = {r: f"{place[r].casefold()}\x00{wanted[r]}" for r in rows.index}
        spot = dict(
            zip(
                rows.index,
                rows.values.get("location", pd.Series("", index=rows.index)),
                strict=True,
            )
        )
        moves = {r: wanted[r] != "" or spot[r] != "" for r in rows.index}
    exists, deleting = dict(rows.exists), dict(rows.deleting)
    released = {email[r] for r in rows.index if r in ok and exists[r] and (deleting[r] or moves[r])}
    keeper: dict[str, str] = {}
    for user, k in zip(users.index, held, strict=True):
        if k != "" and user not in released:
            keeper.setdefault(k, user)
    code = "number_in_use" if fid == "phone_number" else "extension_in_use"
    header = rows.v.headers.get(fid, fid)
    return [
        (int(r), header, code)
        for r in rows.index
        if r in ok
        and wanted[r] != ""
        and not deleting[r]
        and keeper.get(key[r], email[r]) != email[r]
    ]


def _seats(rows: planning.Rows, ok: set[int]) -> list[Issue]:
    """Removals and deletions free seats; assignments then take them in file order."""
    ops = rows.license_ops
    live = [
        (int(r), str(lic), str(op))
        for r, lic, op in zip(ops["row"], ops["license"], ops["op"], strict=True)
    ]
    live = [o for o in live if o[0] in ok]
    out: list[Issue] = []
    for lic in dict.fromkeys(lic for _, lic, op in live if op == "assign_license"):
        if lic in CAT.licenses and CAT.licenses[lic].kind == "basic":
            continue
        pools = rows.snap.pools
        mine = pools[pools["license"] == lic]
        sub = rows.subscription_of(lic)
        if sub:
            mine = mine[mine["subscription"] == sub]
        active = mine[mine["status"] == "active"]
        if active.empty and not mine.empty:
            continue
        seats = sum(math.inf if math.isnan(q) else q for q in active["quantity"])
        if lic in CAT.packages:
            used = int((rows.snap.users["package"] == lic).sum())
        else:
            used = int((rows.snap.licenses["license"] == lic).sum())
        holds = dict(planning.held(rows, lic))
        freed = sum(1 for _, name, op in live if name == lic and op == "remove_license")
        freed += sum(
            1 for r in rows.index if r in ok and rows.deleting[r] and rows.exists[r] and holds[r]
        )
        taking = [r for r, name, op in live if name == lic and op == "assign_license"]
        left = seats - used + freed
        if math.isinf(left) or len(taking) <= left:
            continue
        header = rows.v.headers.get(lic, lic)
        out += [(r, header, "license_unavailable") for r in taking[max(int(left), 0) :]]
    return out


def _last_admin(rows: planning.Rows, ok: set[int]) -> list[Issue]:
    admins = int((rows.snap.users["role"] == "full_admin").sum())
    role = dict(rows.cur["role"])
    gone = [
        int(r)
        for r in rows.index
        if r in ok and rows.deleting[r] and rows.exists[r] and role[r] == "full_admin"
    ]
    if admins == 0 or len(gone) < admins:
        return []
    header = rows.v.headers.get("email", "email")
    return [(r, header, "last_admin") for r in gone[admins - 1 :]]


def _missing_package(rows: planning.Rows) -> list[Issue]:
    newcomer = dict(rows.add | rows.claim)
    header = rows.v.headers.get("email", "email")
    return [
        (int(r), header, "missing_package")
        for r, package in zip(rows.index, rows.v.after["package"], strict=True)
        if newcomer[r] and package == ""
    ]


def _admin_downgrade(rows: planning.Rows) -> list[Issue]:
    org = rows.snap.settings.package
    if not org or org not in CAT.packages:
        return []
    floor = CAT.packages[org].level
    role = dict(rows.cur["role"])
    package = dict(rows.v.row_package)
    out: list[Issue] = []
    for pid, pkg in CAT.packages.items():
        out += [
            (int(r), rows.v.headers.get(pid, pid), "admin_downgrade")
            for r in rows.index
            if role[r] == "full_admin"
            and rows.exists[r]
            and package[r] == pid
            and pkg.level < floor
        ]
    return out


def _inventory(rows: planning.Rows) -> list[Issue]:
    checks = [
        ("location", set(rows.snap.locations), "unknown_location"),
        ("preferred_site", set(rows.snap.sites), "unknown_site"),
        ("phone_number", set(rows.snap.numbers["number"]), "number_not_in_inventory"),
    ]
    return [
        (int(r), rows.v.headers.get(fid, fid), code)
        for fid, known, code in checks
        if fid in rows.values
        for r, value in zip(rows.index, rows.values[fid], strict=True)
        if value != "" and value not in known
    ]


# --- the tests ----------------------------------------------------------------------------------


def _builder(v: Validated) -> IssueBuilder:
    email = v.cells["email"] if "email" in v.cells else pd.Series("", index=v.cells.index)
    return IssueBuilder(v.cells, v.headers, email)


@given(seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_whole_plan_rules_match_their_definition(seed: int, tmp_path: Path) -> None:
    """Numbers, extensions, seats and the last administrator, for the rows rules and
    validation left valid and for an arbitrary subset of rows."""
    v0, snap0, mode = _case(seed, tmp_path)
    for v, snap in _variants(v0, snap0):
        rows = planning.classify(v, snap, CAT, mode)  # type: ignore[arg-type]
        b = _builder(v)
        rules.check(rows, b)
        first = planning._valid_rows(rows, pd.concat([v.issues, b.frame()]))
        some = rows.index[[random.Random(seed).random() < 0.7 for _ in rows.index]]
        for valid in (first, some):
            ok = {int(r) for r in valid}
            expected = _in_order(
                [
                    _in_use(rows, ok, "phone_number"),
                    _in_use(rows, ok, "extension"),
                    _seats(rows, ok),
                    _last_admin(rows, ok),
                ]
            )
            got = accounting.check(rows, valid)
            codes = {"number_in_use", "extension_in_use", "license_unavailable", "last_admin"}
            assert _issues(got, codes) == expected
            assert len(got) == len(expected)


@given(seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_row_rules_match_their_definition(seed: int, tmp_path: Path) -> None:
    """Inventory (locations, sites, numbers), new users without a package, and the
    administrators' package level."""
    v0, snap0, mode = _case(seed, tmp_path)
    for v, snap in _variants(v0, snap0)[:2]:
        rows = planning.classify(v, snap, CAT, mode)  # type: ignore[arg-type]
        b = _builder(v)
        rules.check(rows, b)
        codes = {"unknown_location", "unknown_site", "number_not_in_inventory"}
        codes |= {"missing_package", "admin_downgrade"}
        expected = _in_order([_inventory(rows), _missing_package(rows), _admin_downgrade(rows)])
        assert _issues(b.frame(), codes) == expected


@pytest.mark.parametrize("keeper_moves", [False, True])
def test_a_number_held_twice_counts_for_the_holder_that_keeps_it(
    tmp_path: Path, keeper_moves: bool
) -> None:
    """The org lists +4930000001 on two users. Row 2 moves the first holder to another
    number; row 3 gives the number to a new user. The second holder still has it, unless row
    4 moves that holder too."""
    rng = random.Random(0)
    snap = _org(rng, 6)
    users = snap.users.copy()
    users["phone_number"] = ["+4930000001", "", "+4930000001", "", "", ""]
    snap = replace(snap, users=users)
    lines = [
        "User ID/Email (Required),Phone Number,Location,Jabber Calling,Jabber with Webex Teams",
        "u0@acme.example,+4930000002,HQ,TRUE,TRUE",
        "new@acme.example,+4930000001,HQ,TRUE,TRUE",
    ]
    if keeper_moves:
        lines.append("u2@acme.example,+4930000003,HQ,TRUE,TRUE")
    path = tmp_path / "users.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_table(path, Options(file=path, org="acme"), CAT)
    v = validate(table, CAT, "add-only", current=snap.users)
    for v_, snap_ in _variants(v, snap):
        rows = planning.classify(v_, snap_, CAT, "add-only")
        got = accounting.check(rows, rows.index)
        clash = [
            (int(r), c)
            for r, c in zip(got["row"], got["code"], strict=True)
            if c == "number_in_use"
        ]
        assert clash == ([] if keeper_moves else [(3, "number_in_use")])
