"""Per-package requirements on the user as it would be after the row (SPEC section 4).

The "after" view is the row's non-blank cells over the org's current values, with the package
the user holds after the row. The same view decides ``invalid_name`` (by the package) and
``duplicate_extension`` (by the location). Rows that delete a user (every package FALSE) are
checked by nothing here but ``delete_requires_remove_mode`` in add-only mode.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from csvimport.beside import beside
from csvimport.catalog import Catalog
from csvimport.issues import IssueBuilder, duplicate_codes, key_codes
from csvimport.masks import (
    arrow_text,
    byte_bits,
    byte_lengths,
    filled,
    filled_cells,
    is_false,
    text_offsets,
)
from csvimport.model import Mode


def delete_rows(flags: dict[str, pd.Series], catalog: Catalog, index: pd.Index) -> pd.Series:
    """Rows whose package cells are all FALSE (at least one present, none blank)."""
    present = [flags[p] for p in catalog.packages if p in flags]
    if not present:
        return pd.Series(False, index=index)
    frame = pd.DataFrame({i: s for i, s in enumerate(present)})
    return frame.apply(is_false).all(axis=1)


def user_positions(current: pd.DataFrame, email_key: pd.Series) -> np.ndarray:
    """Per row, the position of its user among ``current``'s rows (-1: none, a new user).

    One hash lookup per job: the aligned view, the planner's "exists" and its license
    holdings all read these positions instead of hashing a million emails again."""
    at = pc.index_in(arrow_text(email_key), value_set=arrow_text(current.index))
    return np.asarray(at.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def user_codes(at: np.ndarray, email_key: pd.Series, users: int) -> np.ndarray:
    """Per row, an integer >= 0 equal for equal keys (as ``issues.key_codes``): the user's
    position (``user_positions``) where the org has the user, else ``users`` plus the key's
    code among the other rows' keys.

    Why: the duplicate check used to hash every email a second time. The positions already
    tell the org's users apart (equal keys find the same first position), so only the rows
    of new users are hashed again: a third of them in a re-upload, all in a first one."""
    codes = np.array(at, dtype=np.int64)
    new = codes < 0
    if new.any():
        keys = arrow_text(email_key)
        if not new.all():
            keys = keys.filter(pyarrow.array(new))
        codes[new] = users + key_codes(keys)
    return codes


def align_current(
    current: pd.DataFrame | None,
    email_key: pd.Series,
    index: pd.Index,
    at: np.ndarray | None = None,
) -> pd.DataFrame | None:
    """The org's current users, one line per row of the file (NaN where the user is new).

    Done once per job: validation and the planner both read it. ``at``: ``user_positions``
    when the caller has them already."""
    if current is None:
        return None
    return Aligner(current, email_key, index, at).run()[1]


class Aligner:
    """``align_current`` as shared work: the thread that found the positions and any other
    thread that calls ``help`` take the columns one by one from a common list, so the
    caller, done with its own checks, shares the takes instead of waiting for them."""

    def __init__(
        self,
        current: pd.DataFrame,
        email_key: pd.Series,
        index: pd.Index,
        at: np.ndarray | None = None,
        *,
        codes: bool = False,
    ) -> None:
        self.current, self.email_key, self.index = current, email_key, index
        self.at = at  # ``user_positions``, when the caller has them already
        self._want_codes = codes  # ``user_codes`` wanted, found beside the positions
        self._codes: np.ndarray | None = None
        self.ready = threading.Event()
        self.finished = threading.Event()
        self._todo = list(reversed(current.columns))
        self._taken: dict[str, pd.Series] = {}
        if not self._todo:
            self.finished.set()

    def run(self) -> tuple[np.ndarray, pd.DataFrame]:
        """Find the positions, take columns until none is left; the whole aligned frame
        once every column is taken (by this thread or a helper)."""
        try:
            at = self.at if self.at is not None else user_positions(self.current, self.email_key)
            self.at = at
            if self._want_codes:
                self._codes = user_codes(at, self.email_key, len(self.current))
        finally:
            self.ready.set()  # a helper must not wait for positions that never come
        self.help()
        return at, self.frame()

    def email_codes(self) -> np.ndarray:
        """``user_codes`` of the rows, once ``run`` found them (asked for with ``codes``);
        the plain ``key_codes`` when it did not (``run`` raises its own error)."""
        self.ready.wait()
        return self._codes if self._codes is not None else key_codes(self.email_key)

    def help(self) -> None:
        """Take columns until none is left to start (list.pop is atomic)."""
        self.ready.wait()
        if self.at is None:  # finding the positions failed: run() raises it
            return
        taken = pyarrow.array(self.at, mask=self.at < 0)
        while True:
            try:
                name = self._todo.pop()
            except IndexError:
                return
            self._taken[name] = _taken(self.current[name], taken, self.index)
            if len(self._taken) == len(self.current.columns):
                self.finished.set()

    def frame(self) -> pd.DataFrame:
        """The aligned frame, once every column is taken (the last one may still be in the
        other thread's hands when this thread runs out of columns to start)."""
        self.finished.wait()
        return pd.DataFrame({c: self._taken[c] for c in self.current.columns}, index=self.index)


def _taken(column: pd.Series, at: pyarrow.Array, index: pd.Index) -> pd.Series:
    """``column`` at the positions ``at`` (NaN where null), on ``index``: an Arrow take per
    column is ~3x faster than ``DataFrame.reindex`` on Arrow-backed text."""
    if isinstance(column.dtype, pd.StringDtype):
        source = pyarrow.array(column.array)
        values = _blank_where(at) if _all_blank(source) else source.take(at)
        return pd.Series(values.to_pandas().array, index=index, dtype="str")
    found = np.asarray(at.is_valid())
    if not found.any():
        return pd.Series(np.nan, index=index, dtype=object)
    picked = column.to_numpy()[np.asarray(at.fill_null(0))]
    return pd.Series(picked, index=index).where(found)


def _all_blank(values: pyarrow.Array | pyarrow.ChunkedArray) -> bool:
    """Every cell "" (no text at all, none missing): an optional field nobody fills in."""
    if not isinstance(values, pyarrow.Array) or values.type != pyarrow.large_string():
        return False
    offsets = text_offsets(values)
    return values.null_count == 0 and bool(offsets[-1] == offsets[0])


def _blank_where(at: pyarrow.Array) -> pyarrow.Array:
    """The take of an all-blank column: "" where ``at`` is set, null where not. A take
    gathers a million random offsets (~25 ms a column) to copy nothing."""
    blank = pyarrow.scalar("", pyarrow.large_string())
    return pc.if_else(at.is_valid(), blank, pyarrow.scalar(None, pyarrow.large_string()))


# The columns of the "after the row" view that outlive validation (the planner reads them).
KEPT_AFTER = ("location", "package")


class AfterView:
    """Every catalogue field as it would be after each row (the row's non-blank cell, else the
    current user's value), and ``package``: computed per column when asked, never all at
    once (seventeen text columns of a million rows are ~250 MB, and most checks only need
    to know which cells are blank, which takes no text at all)."""

    def __init__(
        self,
        cells: pd.DataFrame,
        flags: dict[str, pd.Series],
        row_package: pd.Series,
        mode: Mode,
        cur: pd.DataFrame | None,
    ) -> None:
        self.cells, self.cur, self.index = cells, cur, cells.index
        self.package = _package_after(row_package, flags, mode, cur)
        self._kept: dict[str, pd.Series] = {}  # columns of KEPT_AFTER, once computed
        self._blank: dict[str, np.ndarray] = {}  # ``blank`` per field: packages share fields

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, fid: str) -> pd.Series:
        """The text column of ``fid`` after each row ("" where none)."""
        if fid == "package":
            return self.package
        if fid in self._kept:
            return self._kept[fid]
        own = self.cells[fid] if fid in self.cells else pd.Series("", index=self.index)
        if self.cur is not None and fid in self.cur:
            own = _filled_from(own, self.cur[fid])
        own = own.astype("str")
        if fid in KEPT_AFTER:  # asked for by a check and again by ``frame``
            self._kept[fid] = own
        return own

    def blank(self, fid: str) -> np.ndarray:
        """Where ``fid`` is blank after the row: blank in the file and for the user now.
        Computed once per field (several packages require the same ones); callers only
        read the array."""
        if fid not in self._blank:
            self._blank[fid] = self._blank_now(fid)
        return self._blank[fid]

    def _blank_now(self, fid: str) -> np.ndarray:
        out = np.ones(len(self.index), dtype=bool)
        if fid in self.cells:  # the file's cells are text, never missing: blank is no bytes
            out &= ~filled_cells(arrow_text(self.cells[fid]))
        if self.cur is not None and fid in self.cur and out.any():
            now = filled(pc.equal(arrow_text(self.cur[fid]), ""), True)
            out &= np.asarray(now.to_numpy(zero_copy_only=False), dtype=bool)
        return out

    def frame(self, columns: tuple[str, ...] = KEPT_AFTER) -> pd.DataFrame:
        """Some columns of the view as a frame (what the planner keeps)."""
        return pd.DataFrame({c: self[c] for c in columns}, index=self.index)


def _package_after(
    row_package: pd.Series, flags: dict[str, pd.Series], mode: Mode, cur: pd.DataFrame | None
) -> pd.Series:
    """The package each row's user holds after it: the row's, else (unless add-remove sets
    it FALSE) the current one."""
    package = row_package.copy()
    if cur is not None and "package" in cur:
        held = cur["package"].fillna("").astype(str)
        index = row_package.index
        dropped = (
            _drops_current(held, flags) if mode == "add-remove" else pd.Series(False, index=index)
        )
        package = package.where(package != "", held.where(~dropped, ""))
    return package


def _filled_from(own: pd.Series, current: pd.Series) -> pd.Series:
    """``own``'s cells, the ``current`` value where a cell is blank (missing: ""): one Arrow
    ``if_else`` per column, where pandas' ``where`` on Arrow text cost ~4x as much."""
    mine = arrow_text(own)
    merged = pc.if_else(filled(pc.equal(mine, ""), True), arrow_text(current), mine)
    return pd.Series(_filled(merged).to_pandas().array, index=own.index, dtype="str")


def _filled(text: pyarrow.Array) -> pyarrow.Array:
    """Missing cells as "": a copy of the column only when one is missing (filling before
    the ``if_else`` copied the org's whole column to fill the new users' cells)."""
    return pc.fill_null(text, "") if text.null_count else text


def _drops_current(held: pd.Series, flags: dict[str, pd.Series]) -> pd.Series:
    """add-remove: the row sets the user's current package FALSE."""
    out = pd.Series(False, index=held.index)
    for pid, flag in flags.items():
        out |= (held == pid) & is_false(flag)
    return out


def check(
    after: AfterView,
    cells: pd.DataFrame,
    flags: dict[str, pd.Series],
    catalog: Catalog,
    mode: Mode,
    b: IssueBuilder,
    extension_codes: np.ndarray | None = None,
) -> None:
    """Required and recommended cells, names, extensions per location, deletes by mode.
    ``extension_codes``: ``key_codes`` of the file's extensions, when the caller has them."""
    deleting = delete_rows(flags, catalog, after.index)
    if mode == "add-only":
        b.rows(
            after.index[deleting.to_numpy()],
            "delete_requires_remove_mode",
            "every package column is FALSE, which deletes the user, but the import runs in "
            "'add-only' mode: choose 'add-remove' to delete users, or leave the package "
            "cells blank to keep the user",
        )
    live = ~deleting.to_numpy()
    # one hash pass over the packages, then integer compares (comparing a million Python
    # strings once per package of the catalogue cost ~12 ms each)
    held, names = pd.factorize(after["package"].to_numpy())
    calling = np.zeros(len(after), dtype=bool)
    for pkg in catalog.packages.values():
        code = np.flatnonzero(names == pkg.id)
        if len(code) == 0:
            continue
        holders = live & (held == code[0])
        if holders.any():
            _required(after, holders, pkg.required, pkg.header, catalog, b, warn=False)
            _required(after, holders, pkg.recommended, pkg.header, catalog, b, warn=True)
            if pkg.calling:
                calling |= holders
    _names(after, calling, catalog, b)
    _duplicate_extensions(after, live, cells, b, extension_codes)


def _required(
    after: AfterView,
    holders: np.ndarray,
    names: tuple[str, ...],
    pkg: str,
    catalog: Catalog,
    b: IssueBuilder,
    warn: bool,
) -> None:
    """Blank required (or recommended) cells of the rows whose user holds ``pkg`` after."""
    for name in names:
        if name in catalog.groups:
            group = catalog.groups[name]
            blank = np.logical_and.reduce([after.blank(m) for m in group.any_of])
            column, label, code = group.column, group.label, "missing_required_field"
        else:
            blank = after.blank(name)
            field = catalog.fields[name]
            column, label, code = name, field.header, field.missing_code
        hit = after.index[holders & blank]
        need = "recommended (meetings may fail later)" if warn else "required"
        message = f"{label} is empty but {need} for the package {pkg}: fill it in"
        b.rows(
            hit,
            code,
            message,
            column=column,
            values=pd.Series("", index=hit),
            severity="warning" if warn else "error",
        )


def _names(after: AfterView, calling: np.ndarray, catalog: Catalog, b: IssueBuilder) -> None:
    """``invalid_name``: over the length limit or a forbidden character, calling packages only."""
    if not calling.any():
        return
    limit = catalog.name_max_length
    for fid in ("first_name", "last_name"):
        text = after[fid]
        bad = _longer_than(arrow_text(text), limit) | _has_any(text, catalog.name_forbidden)
        b.cells(
            after.index[calling & bad],
            fid,
            "invalid_name",
            f"use at most {limit} characters and none of {catalog.name_forbidden}",
            values=text,
        )


def _longer_than(text: pyarrow.Array, limit: int) -> np.ndarray:
    """Cells of more than ``limit`` characters. A character is at least one byte, so only
    cells of more than ``limit`` bytes are counted in characters (pandas' ``str.len`` over
    the whole column cost ~7 ms per million cells)."""
    out = byte_lengths(text) > limit
    if out.any():
        chars = pc.utf8_length(text.filter(pyarrow.array(out))).to_numpy(zero_copy_only=False)
        out[out] = np.asarray(chars) > limit
    return out


def _has_any(text: pd.Series, chars: str) -> np.ndarray:
    """Cells holding any of ``chars``: for ASCII ``chars`` one byte lookup over the column
    (their bytes never occur inside a multi-byte character), else a regex character class."""
    if chars.isascii():
        table = np.zeros(256, dtype=np.uint8)
        table[[ord(c) for c in chars]] = 1
        return np.asarray(byte_bits(arrow_text(text), table) != 0)
    forbidden = "[" + "".join("\\" + c if c in "\\]^-" else c for c in chars) + "]"
    return text.str.contains(forbidden, regex=True).to_numpy(dtype=bool)


def _extension_codes(ext: pyarrow.Array, known: np.ndarray | None) -> np.ndarray:
    return key_codes(ext) if known is None else known


def _casefree_codes(text: pyarrow.Array) -> np.ndarray:
    """``key_codes`` of the lowercase text: the column is hashed once and only its distinct
    values (a few locations) are lowercased, not a million cells."""
    encoded = pc.dictionary_encode(text, null_encoding="encode")
    lowered = key_codes(pc.utf8_lower(encoded.dictionary))
    return lowered[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]


def _duplicate_extensions(
    after: AfterView,
    live: np.ndarray,
    cells: pd.DataFrame,
    b: IssueBuilder,
    codes: np.ndarray | None = None,
) -> None:
    """Same extension twice in one location; a blank location is a group of its own.
    ``codes``: ``key_codes`` of the extensions, when already known."""
    if "extension" not in cells:
        return
    ext = arrow_text(cells["extension"])
    used = live & filled_cells(ext)
    location = after["location"]
    # the pair (location, extension) as one integer: two short hashes, no joined strings;
    # whole columns are coded (the extensions beside the locations) and then filtered
    with beside(_extension_codes, ext, codes) as extensions:
        place = _casefree_codes(arrow_text(location))[used]
        number = extensions.result()[used]
    pair = place * (int(number.max(initial=0)) + 1) + number
    rows, firsts = duplicate_codes(pair, location.index[used])
    if len(rows) == 0:
        return
    where = location[rows]
    where = where.where(where != "", "(no location)")
    extra = " (location " + where + "; first used in row " + firsts.astype(str) + ")"
    b.cells(
        rows,
        "extension",
        "duplicate_extension",
        "give each user of a location a different extension",
        extra=extra,
    )
