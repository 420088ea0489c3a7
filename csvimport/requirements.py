"""Per-package requirements on the user as it would be after the row (SPEC section 4).

The "after" view is the row's non-blank cells over the org's current values, with the package
the user holds after the row. The same view decides ``invalid_name`` (by the package) and
``duplicate_extension`` (by the location). Rows that delete a user (every package FALSE) are
checked by nothing here but ``delete_requires_remove_mode`` in add-only mode.
"""

from __future__ import annotations

import pandas as pd

from csvimport.catalog import Catalog
from csvimport.issues import IssueBuilder, duplicate_rows
from csvimport.masks import is_false
from csvimport.model import Mode


def delete_rows(flags: dict[str, pd.Series], catalog: Catalog, index: pd.Index) -> pd.Series:
    """Rows whose package cells are all FALSE (at least one present, none blank)."""
    present = [flags[p] for p in catalog.packages if p in flags]
    if not present:
        return pd.Series(False, index=index)
    frame = pd.DataFrame({i: s for i, s in enumerate(present)})
    return frame.apply(is_false).all(axis=1)


def after_view(
    cells: pd.DataFrame,
    email_key: pd.Series,
    flags: dict[str, pd.Series],
    row_package: pd.Series,
    catalog: Catalog,
    mode: Mode,
    current: pd.DataFrame | None,
) -> pd.DataFrame:
    """Every catalogue field (text) and ``package`` as they would be after each row."""
    index = cells.index
    after = pd.DataFrame(index=index)
    cur = None
    if current is not None:
        cur = current.reindex(email_key.to_numpy())
        cur.index = index
    for fid in catalog.fields:
        own = cells[fid] if fid in cells else pd.Series("", index=index)
        if cur is not None and fid in cur:
            own = own.where(own != "", cur[fid].fillna("").astype(str))
        after[fid] = own.astype("str")
    package = row_package.copy()
    if cur is not None and "package" in cur:
        held = cur["package"].fillna("").astype(str)
        dropped = (
            _drops_current(held, flags) if mode == "add-remove" else pd.Series(False, index=index)
        )
        package = package.where(package != "", held.where(~dropped, ""))
    after["package"] = package
    after["exists"] = cur["package"].notna() if cur is not None and "package" in cur else False
    return after


def _drops_current(held: pd.Series, flags: dict[str, pd.Series]) -> pd.Series:
    """add-remove: the row sets the user's current package FALSE."""
    out = pd.Series(False, index=held.index)
    for pid, flag in flags.items():
        out |= (held == pid) & is_false(flag)
    return out


def check(
    after: pd.DataFrame,
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
    live = after[~deleting.to_numpy()]
    for package in catalog.packages.values():
        rows = live[live["package"] == package.id]
        if len(rows):
            _required(rows, package.required, package.header, catalog, b, warn=False)
            _required(rows, package.recommended, package.header, catalog, b, warn=True)
            if package.calling:
                _names(rows, catalog, b)
    _duplicate_extensions(live, cells, b)


def _required(
    rows: pd.DataFrame,
    names: tuple[str, ...],
    pkg: str,
    catalog: Catalog,
    b: IssueBuilder,
    warn: bool,
) -> None:
    for name in names:
        if name in catalog.groups:
            group = catalog.groups[name]
            blank = pd.concat([rows[m] == "" for m in group.any_of], axis=1).all(axis=1)
            column, label, code = group.column, group.label, "missing_required_field"
        else:
            blank = rows[name] == ""
            field = catalog.fields[name]
            column, label, code = name, field.header, field.missing_code
        hit = rows.index[blank.to_numpy()]
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


def _names(rows: pd.DataFrame, catalog: Catalog, b: IssueBuilder) -> None:
    """``invalid_name``: over the length limit or a forbidden character, calling packages only."""
    forbidden = "[" + "".join("\\" + c if c in "\\]^-" else c for c in catalog.name_forbidden) + "]"
    limit = catalog.name_max_length
    for fid in ("first_name", "last_name"):
        text = rows[fid].astype(str)
        bad = (text.str.len() > limit) | text.str.contains(forbidden, regex=True)
        b.cells(
            rows.index[bad.to_numpy()],
            fid,
            "invalid_name",
            f"use at most {limit} characters and none of {catalog.name_forbidden}",
            values=text,
        )


def _duplicate_extensions(live: pd.DataFrame, cells: pd.DataFrame, b: IssueBuilder) -> None:
    """Same extension twice in one location; a blank location is a group of its own."""
    if "extension" not in cells:
        return
    ext = cells["extension"].reindex(live.index)
    used = live[(ext != "").to_numpy()]
    key = used["location"].str.lower() + "\x00" + ext[used.index]
    rows, firsts = duplicate_rows(key)
    if len(rows) == 0:
        return
    where = used.loc[rows, "location"]
    where = where.where(where != "", "(no location)")
    extra = " (location " + where + "; first used in row " + firsts.astype(str) + ")"
    b.cells(
        rows,
        "extension",
        "duplicate_extension",
        "give each user of a location a different extension",
        extra=extra,
    )
