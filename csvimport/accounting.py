"""Whole-plan rules: what other rows of the same file free or take (SPEC section 5).

Numbers and extensions that other rows release count as free, so two users can swap; seats
freed by removals and deletions are counted before assignments take seats in file order; the
last administrator cannot be deleted. ``check`` sees only the rows that are still valid, and
``plan`` repeats it until no further row falls, because a rejected row neither frees nor takes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.digitkeys import all_keyed, first_index, picked_keys
from csvimport.issues import IssueBuilder
from csvimport.masks import arrow_text, member
from csvimport.plan import Rows, held, normalise_phone

SHOWN_ROWS = 10


def check(rows: Rows, valid: pd.Index) -> pd.DataFrame:
    """Issues for valid rows that the whole plan rejects."""
    email = rows.v.cells["email"] if "email" in rows.v.cells else pd.Series("", index=rows.index)
    b = IssueBuilder(rows.v.cells, rows.v.headers, email)
    ok = pd.Series(rows.index.isin(valid), index=rows.index)
    users = _Users(rows, ok)
    _numbers(rows, ok, b, users)
    _extensions(rows, ok, b, users)
    _seats(rows, ok, b)
    _last_admin(rows, ok, b)
    return b.frame()


def _taking(rows: Rows, ok: pd.Series, wanted: pd.Series) -> np.ndarray:
    """Valid rows that take the number or extension of their cell."""
    taking: np.ndarray = (ok & (wanted != "") & ~rows.deleting).to_numpy()
    return taking


class _Users:
    """Which of the org's users the valid rows are about, found once per ``check`` and only
    when a rule needs it: numbers and extensions both ask which users give up what they
    hold (``gone``).

    The rows' user positions (``Validated.current_at``) are used as they are once the
    emails there are checked to be the rows' own; else the valid rows' emails are looked up
    among the org's in one Arrow hash. Both need the org's emails unique (as the store
    keeps them); when they are not, every set of rows is looked up by email as it is."""

    def __init__(self, rows: Rows, ok: pd.Series) -> None:
        self.rows = rows
        self.ok = ok
        self._at: np.ndarray | None = None
        self._unique: bool | None = None

    def gone(self, releasing: pd.Series) -> np.ndarray:
        """Per user of the org: a ``releasing`` row (valid, of an existing user) is about it."""
        users = self.rows.snap.users
        pick = releasing.to_numpy()
        if not len(users):
            return np.zeros(0, dtype=bool)
        if self._unique is None:
            self._unique = _unique_emails(users.index)
        if not self._unique:
            return member(users.index, self.rows.v.email_key[pick])
        at = self._positions()[pick]
        gone = np.zeros(len(users), dtype=bool)
        gone[at[at >= 0]] = True
        return gone

    def _positions(self) -> np.ndarray:
        """Per row, its user's position among the org's users for the valid rows of
        existing users (-1 elsewhere and where the email is not the org's)."""
        if self._at is not None:
            return self._at
        rows = self.rows
        users = rows.snap.users
        mine = (self.ok & rows.exists).to_numpy()
        emails = arrow_text(rows.v.email_key).filter(pa.array(mine))
        given = rows.v.current_at
        at = None
        if given is not None and len(given) == len(mine):
            at = given[mine]
            if not _points_at(users.index, at, emails):
                at = None  # positions in another list of users: look the emails up
        if at is None:
            found = pc.index_in(emails, value_set=arrow_text(users.index))
            at = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        self._at = np.full(len(mine), -1, dtype=np.int64)
        self._at[mine] = at
        return self._at


def _points_at(org: pd.Index, at: np.ndarray, emails: pa.Array) -> bool:
    """Whether ``at`` are the positions of ``emails`` among the org's emails ``org``."""
    if not len(at):
        return True
    if ((at < 0) | (at >= len(org))).any():
        return False
    same = pc.equal(arrow_text(org).take(pa.array(at)), emails)
    return bool(pc.all(pc.fill_null(same, False)).as_py())


def _unique_emails(emails: pd.Index) -> bool:
    """Whether no email is the org's twice: strictly ascending (as the store reads them),
    checked in one Arrow pass, else pandas' (cached) hash check."""
    text = arrow_text(emails)
    if len(text) < 2:
        return True
    if text.null_count == 0 and pc.all(pc.less(text[:-1], text[1:])).as_py():
        return True
    return bool(emails.is_unique)


def _clash(rows: Rows, taking: np.ndarray, at: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``taking`` rows whose key another user keeps after the plan: ``at`` holds, per
    taking row, the position of its key among the kept keys (one per user of ``kept``, in
    the org's order; -1 for none), the first one, so a key held twice counts for its first
    holder; only the rows that find one compare emails."""
    out = np.zeros(len(rows.index), dtype=bool)
    found = at >= 0
    if not found.any():
        return out
    where = np.flatnonzero(taking)[found]
    holder_at = np.flatnonzero(kept)[at[found]]
    holder = arrow_text(rows.snap.users.index).take(pa.array(holder_at))
    other = pc.not_equal(holder, arrow_text(rows.v.email_key).take(pa.array(where)))
    out[where] = np.asarray(pc.fill_null(other, False).to_numpy(zero_copy_only=False), dtype=bool)
    return out


def _first_index(keys: pa.Array, kept_keys: pa.Array) -> np.ndarray:
    """``index_in`` of text keys as positions (-1 for none): the path for texts that have
    no integer key."""
    if not len(kept_keys):
        return np.full(len(keys), -1, dtype=np.int64)
    at = pc.index_in(keys, value_set=kept_keys).fill_null(-1)
    return np.asarray(at.to_numpy(zero_copy_only=False), dtype=np.int64)


def _numbers(rows: Rows, ok: pd.Series, b: IssueBuilder, users: _Users) -> None:
    """``number_in_use``: a number held after the whole plan by another user.

    The numbers are looked up by integer key (``digitkeys``) when the kept ones are at
    least as many as the taken ones (and all have a key): the text lookup's cost is hashing
    the kept numbers (~0.3 s for a million), the keys' is keying both sides (~0.05 s per
    million): with fewer kept numbers than taken ones (a big file) text is as fast."""
    if "phone_number" not in rows.values:
        return
    wanted = rows.values["phone_number"]
    taking = _taking(rows, ok, wanted)
    if not taking.any():
        return
    raw = rows.snap.users["phone_number"].astype(str)
    releasing = ok & rows.exists & (rows.deleting | (wanted != ""))
    # only the numbers of users that keep theirs are normalised (the file's users give up theirs)
    keeps = (raw != "").to_numpy() & ~users.gone(releasing)
    now = normalise_phone(raw[keeps])
    some = (now != "").to_numpy()  # a number left once spaces and dashes are gone
    kept = keeps.copy()
    kept[keeps] = some
    text, kept_text = arrow_text(wanted), arrow_text(now)
    kept_keys = None
    if np.count_nonzero(some) >= np.count_nonzero(taking):
        kept_keys = all_keyed(picked_keys(kept_text, some))
    if kept_keys is not None:
        at = first_index(picked_keys(text, taking), kept_keys)
    else:
        at = _first_index(text.filter(pa.array(taking)), kept_text.filter(pa.array(some)))
    b.cells(
        rows.index[_clash(rows, taking, at, kept)],
        "phone_number",
        "number_in_use",
        "another user keeps this number after this file: choose a free number of the org",
    )


def _extensions(rows: Rows, ok: pd.Series, b: IssueBuilder, users: _Users) -> None:
    """``extension_in_use``: the extension is held by another user of the same location.

    The key is the location (case-folded) and the extension: as one integer where the
    extensions are digits (``_located_keys``), else as text, joined by NUL; it is built only
    for the users that keep an extension and the rows that take one."""
    if "extension" not in rows.values:
        return
    wanted = rows.values["extension"]
    taking = _taking(rows, ok, wanted)
    if not taking.any():
        return
    org = rows.snap.users
    ext = org["extension"].astype(str)
    moves = wanted != ""
    if "location" in rows.values:
        moves |= rows.values["location"] != ""
    kept = (ext != "").to_numpy() & ~users.gone(ok & rows.exists & (rows.deleting | moves))
    place = rows.v.after["location"]
    keys = _located_keys((place, wanted, taking), (org["location"], ext, kept))
    if keys is not None:
        at = first_index(*keys)
    else:
        at = _first_index(
            _location_key(place, wanted, taking), _location_key(org["location"], ext, kept)
        )
    b.cells(
        rows.index[_clash(rows, taking, at, kept)],
        "extension",
        "extension_in_use",
        "another user of this location keeps that extension after this file: choose a "
        "free extension",
    )


_Located = tuple[pd.Series, pd.Series, np.ndarray]  # location, extension, which entries


def _located_keys(needles: _Located, haystack: _Located) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer keys of (case-folded location, extension) for both sides: the place's code
    above the extension's digit key. None when a kept extension has no digit key, a place
    holds a NUL (then a text key's NUL no longer splits place and extension, so only text
    keys compare as the SPEC's keys do) or the codes do not fit above the digits."""
    hay_ext = all_keyed(picked_keys(arrow_text(haystack[1]), haystack[2]))
    if hay_ext is None:
        return None
    ext = picked_keys(arrow_text(needles[1]), needles[2])
    names: dict[str, int] = {}
    places = [_place_codes(side[0], side[2], names) for side in (needles, haystack)]
    shift = int(max(ext.max(initial=0), hay_ext.max(initial=0))).bit_length()
    if any("\x00" in name for name in names) or (len(names) - 1) >> (64 - shift):
        return None
    # a needle extension without a key (0) leaves only its place: no kept key is that
    needle, hay = ((p << np.uint64(shift)) | e for p, e in zip(places, (ext, hay_ext), strict=True))
    return needle, hay


def _place_codes(location: pd.Series, where: np.ndarray, names: dict[str, int]) -> np.ndarray:
    """Per entry of ``where``, the code of its case-folded location (a missing one counts
    as ""), numbered in ``names``, which both sides share: the few distinct names are
    folded, not the million cells."""
    coded = pc.dictionary_encode(arrow_text(location))
    folded = [str(n).casefold() for n in coded.dictionary.to_pylist()] + [""]
    codes = np.array([names.setdefault(f, len(names)) for f in folded], dtype=np.uint64)
    at = coded.indices.fill_null(len(folded) - 1).to_numpy(zero_copy_only=False)
    picked: np.ndarray = codes.take(at[where])
    return picked


def _location_key(location: pd.Series, extension: pd.Series, where: np.ndarray) -> pa.Array:
    """Case-folded location + NUL + extension of the entries of ``where`` (a missing
    location counts as "", a missing extension makes the key missing)."""
    pick = pa.array(where)
    coded = pc.dictionary_encode(arrow_text(location).filter(pick))
    names = coded.dictionary.to_pylist()
    folded = pa.array([str(n).casefold() for n in names], type=pa.large_string())
    place = pc.fill_null(folded.take(coded.indices), "")
    return pc.binary_join_element_wise(
        place, arrow_text(extension).filter(pick), pa.scalar("\x00", pa.large_string())
    )


def _seats(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """``license_unavailable``: removals and deletions free seats, then assignments take them
    in file order; the rows past the last free seat are rejected.

    The license operations are coded once (license as an integer, the valid rows' assign and
    remove masks): each license then costs integer comparisons, not a filtered frame."""
    all_ops = rows.license_ops
    live = all_ops["row"].isin(rows.index[ok.to_numpy()]).to_numpy()
    codes, names = pd.factorize(all_ops["license"])
    op = all_ops["op"]
    assign = live & (op == "assign_license").to_numpy()
    remove = live & (op == "remove_license").to_numpy()
    row = all_ops["row"].to_numpy()
    leaving = (ok & rows.deleting & rows.exists).to_numpy()
    for code in pd.unique(codes[assign]):
        if code < 0:
            continue  # no license: nothing to count
        lic = str(names[int(code)])
        if lic in rows.cat.licenses and rows.cat.licenses[lic].kind == "basic":
            continue
        seats, pool_name = _pool_seats(rows, lic)
        if seats is None or math.isinf(seats):
            continue  # suspended/cancelled only: license_suspended said it; or unlimited
        mine = codes == code
        taking = row[assign & mine]
        used = int(held_count(rows, lic))
        freed = int((remove & mine).sum())
        if leaving.any():
            freed += int((leaving & held(rows, lic).to_numpy()).sum())
        left = seats - used + freed
        if len(taking) <= left:
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


def _last_admin(rows: Rows, ok: pd.Series, b: IssueBuilder) -> None:
    """The org keeps at least one full administrator."""
    leaving = ok & rows.deleting & rows.exists
    if not leaving.any():
        return  # nobody is deleted
    gone = leaving & (rows.cur["role"] == "full_admin").fillna(False).astype(bool)
    idx = rows.index[gone.to_numpy()]
    admins = int((rows.snap.users["role"] == "full_admin").sum())
    if admins == 0 or len(idx) < admins:
        return
    last = idx[admins - 1 :]
    b.rows(
        last,
        "last_admin",
        "this would delete the org's last full administrator: make "
        "another user a full administrator first, or keep this user",
    )
