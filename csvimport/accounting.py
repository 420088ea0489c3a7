"""Whole-plan rules: what other rows of the same file free or take (SPEC section 5).

Numbers and extensions that other rows release count as free, so two users can swap; seats
freed by removals and deletions are counted before assignments take seats in file order; the
last administrator cannot be deleted. ``check`` sees only the rows that are still valid, and
``plan`` repeats it until no further row falls, because a rejected row neither frees nor takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.issues import IssueBuilder
from csvimport.masks import arrow_text, member
from csvimport.plan import Rows, held, normalise_phone, per_distinct

SHOWN_ROWS = 10


def check(rows: Rows, valid: pd.Index) -> pd.DataFrame:
    """Issues for valid rows that the whole plan rejects."""
    email = rows.v.cells["email"] if "email" in rows.v.cells else pd.Series("", index=rows.index)
    b = IssueBuilder(rows.v.cells, rows.v.headers, email)
    ok = pd.Series(rows.index.isin(valid), index=rows.index)
    _numbers(rows, ok, b)
    _extensions(rows, ok, b)
    _seats(rows, ok, b)
    _last_admin(rows, ok, b)
    return b.frame()


@dataclass
class _Kept:
    """Keys (number, or location + extension) that current holders keep after the plan, with
    the holder's lowercase email; a key held twice counts for its first holder."""

    keys: pa.Array
    holders: pa.Array


def _kept(rows: Rows, now: pd.Series, releasing: pd.Series) -> _Kept:
    """``now`` is per user ("" = holds none); ``releasing`` marks the valid rows whose user
    gives up what it holds now."""
    gone = member(rows.snap.users.index, rows.v.email_key[releasing.to_numpy()])
    keep = pa.array((now != "").to_numpy() & ~gone)
    return _Kept(arrow_text(now).filter(keep), arrow_text(rows.snap.users.index).filter(keep))


def _clash(rows: Rows, ok: pd.Series, wanted: pd.Series, key: pd.Series, kept: _Kept) -> np.ndarray:
    """Valid rows taking a key that another user keeps: one Arrow hash lookup of the rows'
    keys in the kept ones (first holder wins, as ``index_in`` finds the first)."""
    at = pc.index_in(arrow_text(key), value_set=kept.keys)
    holder = kept.holders.take(at)  # null where nobody keeps the key
    other = pc.fill_null(pc.not_equal(holder, arrow_text(rows.v.email_key)), False)
    taking = (ok & (wanted != "") & ~rows.deleting).to_numpy()
    clash: np.ndarray = taking & np.asarray(other.to_numpy(zero_copy_only=False), dtype=bool)
    return clash


def _numbers(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """``number_in_use``: a number held after the whole plan by another user."""
    if "phone_number" not in rows.values:
        return
    wanted = rows.values["phone_number"]
    now = normalise_phone(rows.snap.users["phone_number"].astype(str))
    kept = _kept(rows, now, ok & rows.exists & (rows.deleting | (wanted != "")))
    clash = _clash(rows, ok, wanted, wanted, kept)
    b.cells(
        rows.index[clash],
        "phone_number",
        "number_in_use",
        "another user keeps this number after this file: choose a free number of the org",
    )


def _extensions(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """``extension_in_use``: the extension is held by another user of the same location."""
    if "extension" not in rows.values:
        return
    users = rows.snap.users
    ext = users["extension"].astype(str)
    now = (per_distinct(users["location"], str.casefold) + "\x00" + ext).where(ext != "", "")
    wanted = rows.values["extension"]
    moves = wanted != ""
    if "location" in rows.values:
        moves |= rows.values["location"] != ""
    kept = _kept(rows, now, ok & rows.exists & (rows.deleting | moves))
    key = per_distinct(rows.v.after["location"], str.casefold) + "\x00" + wanted
    clash = _clash(rows, ok, wanted, key, kept)
    b.cells(
        rows.index[clash],
        "extension",
        "extension_in_use",
        "another user of this location keeps that extension after this file: choose a "
        "free extension",
    )


def _seats(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """``license_unavailable``: removals and deletions free seats, then assignments take them
    in file order; the rows past the last free seat are rejected."""
    ops = rows.license_ops[rows.license_ops["row"].isin(rows.index[ok.to_numpy()])]
    assigns = ops[ops["op"] == "assign_license"]
    for lic in assigns["license"].unique():
        if lic in rows.cat.licenses and rows.cat.licenses[lic].kind == "basic":
            continue
        seats, pool_name = _pool_seats(rows, lic)
        if seats is None:
            continue  # suspended/cancelled only: license_suspended said it
        taking = assigns.loc[assigns["license"] == lic, "row"].to_numpy()
        used = int(held_count(rows, lic))
        freed = _freed(rows, ok, ops, lic)
        left = seats - used + freed
        if math.isinf(left) or len(taking) <= left:
            continue
        past = pd.Index(taking[max(int(left), 0) :])
        shown = ", ".join(str(r) for r in past[:SHOWN_ROWS]) + (
            " …" if len(past) > SHOWN_ROWS else ""
        )
        have = max(int(seats - used + freed), 0)
        b.cells(
            past,
            lic,
            "license_unavailable",
            f"Licenses not available: {pool_name} has {have} of {_qty(seats)} seats left "
            f"after this file's removals, {len(taking)} rows need one, {len(past)} short "
            f"(rows {shown}): order more licenses or assign fewer",
            values=pd.Series("TRUE", index=past),
        )


def _qty(seats: float) -> str:
    return "unlimited" if math.isinf(seats) else str(int(seats))


def _pool_seats(rows: Rows, lic: str) -> tuple[float | None, str]:
    """Seats of the license's active pools (of the header's subscription); None when its
    only pools are suspended or cancelled (``license_suspended`` applies instead)."""
    pools = rows.snap.pools
    mine = pools[pools["license"] == lic]
    sub = rows.subscription_of(lic)
    if sub:
        mine = mine[mine["subscription"] == sub]
    header = rows.cat.header_of(lic)
    active = mine[mine["status"] == "active"]
    if active.empty:
        if not mine.empty:
            return None, header
        where = f" of subscription {sub}" if sub else ""
        return 0.0, f"no active pool of '{header}'{where}"
    orders = ", ".join(o for o in active["order"] if o)
    name = f"pool '{header}'" + (f" (order {orders})" if orders else "")
    quantity = active["quantity"].fillna(math.inf).sum()
    return float(quantity), name


def held_count(rows: Rows, lic: str) -> int:
    """Seats of ``lic`` used in the org now."""
    if lic in rows.cat.packages:
        return int((rows.snap.users["package"] == lic).sum())
    return int((rows.snap.licenses["license"] == lic).sum())


def _freed(rows: Rows, ok: pd.Series, ops: pd.DataFrame, lic: str) -> int:
    removals = int(((ops["license"] == lic) & (ops["op"] == "remove_license")).sum())
    deleted = ok & rows.deleting & rows.exists & held(rows, lic)
    return removals + int(deleted.sum())


def _last_admin(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """The org keeps at least one full administrator."""
    users = rows.snap.users
    admins = int((users["role"] == "full_admin").sum())
    gone = (
        ok
        & rows.deleting
        & rows.exists
        & (rows.cur["role"] == "full_admin").fillna(False).astype(bool)
    )
    idx = rows.index[gone.to_numpy()]
    if admins == 0 or len(idx) < admins:
        return
    last = idx[admins - 1 :]
    b.rows(
        last,
        "last_admin",
        "this would delete the org's last full administrator: make "
        "another user a full administrator first, or keep this user",
    )
