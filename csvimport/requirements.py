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

from csvimport.catalog import Catalog
from csvimport.issues import IssueBuilder, codes_of, duplicate_codes
from csvimport.masks import arrow_text, byte_bits, is_false
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
    ) -> None:
        self.current, self.email_key, self.index = current, email_key, index
        self.at = at  # ``user_positions``, when the caller has them already
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
        finally:
            self.ready.set()  # a helper must not wait for positions that never come
        self.help()
        return at, self.frame()

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
        values = pyarrow.array(column.array).take(at)
        return pd.Series(values.to_pandas().array, index=index, dtype="str")
    found = np.asarray(at.is_valid())
    if not found.any():
        return pd.Series(np.nan, index=index, dtype=object)
    picked = column.to_numpy()[np.asarray(at.fill_null(0))]
    return pd.Series(picked, index=index).where(found)


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

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, fid: str) -> pd.Series:
        """The text column of ``fid`` after each row ("" where none)."""
        if fid == "package":
            return self.package
        own = self.cells[fid] if fid in self.cells else pd.Series("", index=self.index)
        if self.cur is not None and fid in self.cur:
            own = _filled_from(own, self.cur[fid])
        return own.astype("str")

    def blank(self, fid: str) -> np.ndarray:
        """Where ``fid`` is blank after the row: blank in the file and for the user now."""
        out = np.ones(len(self.index), dtype=bool)
        if fid in self.cells:
            out &= (self.cells[fid] == "").to_numpy(dtype=bool)
        if self.cur is not None and fid in self.cur and out.any():
            now = pc.fill_null(pc.equal(arrow_text(self.cur[fid]), ""), True)
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
    theirs = pc.fill_null(arrow_text(current), "")
    merged = pc.if_else(pc.fill_null(pc.equal(mine, ""), True), theirs, pc.fill_null(mine, ""))
    return pd.Series(merged.to_pandas().array, index=own.index, dtype="str")


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
) -> None:
    """Required and recommended cells, names, extensions per location, deletes by mode."""
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
    package = after["package"].to_numpy()
    calling = np.zeros(len(after), dtype=bool)
    for pkg in catalog.packages.values():
        holders = live & (package == pkg.id)
        if holders.any():
            _required(after, holders, pkg.required, pkg.header, catalog, b, warn=False)
            _required(after, holders, pkg.recommended, pkg.header, catalog, b, warn=True)
            if pkg.calling:
                calling |= holders
    _names(after, calling, catalog, b)
    _duplicate_extensions(after, live, cells, b)


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
        bad = (text.str.len() > limit).to_numpy(dtype=bool) | _has_any(text, catalog.name_forbidden)
        b.cells(
            after.index[calling & bad],
            fid,
            "invalid_name",
            f"use at most {limit} characters and none of {catalog.name_forbidden}",
            values=text,
        )


def _has_any(text: pd.Series, chars: str) -> np.ndarray:
    """Cells holding any of ``chars``: for ASCII ``chars`` one byte lookup over the column
    (their bytes never occur inside a multi-byte character), else a regex character class."""
    if chars.isascii():
        table = np.zeros(256, dtype=np.uint8)
        table[[ord(c) for c in chars]] = 1
        return np.asarray(byte_bits(arrow_text(text), table) != 0)
    forbidden = "[" + "".join("\\" + c if c in "\\]^-" else c for c in chars) + "]"
    return text.str.contains(forbidden, regex=True).to_numpy(dtype=bool)


def _duplicate_extensions(
    after: AfterView, live: np.ndarray, cells: pd.DataFrame, b: IssueBuilder
) -> None:
    """Same extension twice in one location; a blank location is a group of its own."""
    if "extension" not in cells:
        return
    ext = cells["extension"]
    used = live & (ext != "").to_numpy()
    location = after["location"][used]
    # the pair (location, extension) as one integer: two short hashes, no joined strings
    place, number = codes_of([location.str.lower(), ext[used]])
    pair = place * (int(number.max(initial=0)) + 1) + number
    rows, firsts = duplicate_codes(pair, location.index)
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
