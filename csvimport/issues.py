"""The issue catalogue and a vectorised builder of issue frames.

Like frictionless' error catalogue: every code has a stable id, a severity and a short
description; messages are assembled from the column's header as uploaded, the offending value,
the description and the fix, for a whole set of rows at once (no per-row Python).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.masks import arrow_text
from csvimport.model import ISSUE_COLUMNS, Severity, issues_frame

# code -> (severity, what is wrong, phrased after "<Header> '<value>'")
CODES: dict[str, tuple[Severity, str]] = {
    "invalid_email": ("error", "is not a valid email address"),
    "missing_email": ("error", "is empty"),
    "duplicate_email": ("error", "appears more than once in the file"),
    "invalid_boolean": ("error", "is not TRUE or FALSE"),
    "multiple_packages": ("error", "sets more than one package"),
    "missing_required_field": ("error", "is required for the user's package but is empty"),
    "missing_preferred_site": ("warning", "is empty; the user's package includes meetings"),
    "invalid_name": ("error", "is not allowed for a calling package"),
    "invalid_phone": ("error", "is not a valid phone number"),
    "number_mangled": ("error", "was turned into a number by the spreadsheet"),
    "invalid_extension": ("error", "is not a valid extension"),
    "duplicate_phone": ("error", "is given to more than one user in the file"),
    "duplicate_extension": ("error", "is used more than once in the same location"),
    "suspended_license": ("error", "assigns a service the file marks as suspended"),
    "delete_requires_remove_mode": ("error", "sets every package FALSE"),
    "unknown_location": ("error", "is not a location of the organisation"),
    "unknown_site": ("error", "is not a Webex site of the organisation"),
    "number_not_in_inventory": ("error", "is not a number of the organisation"),
    "number_in_use": ("error", "is already held by another user"),
    "extension_in_use": ("error", "is already held by another user in this location"),
    "missing_package": ("error", "is a new user without a package"),
    "license_unavailable": ("error", "needs a license seat that is not available"),
    "license_suspended": ("error", "needs a license whose pool is suspended or cancelled"),
    "product_not_enabled": ("error", "needs a product that is not enabled for the organisation"),
    "license_managed_externally": ("error", "changes a license that an integration controls"),
    "directory_sync_enabled": ("error", "cannot be changed by file: users come from a directory"),
    "directory_managed_attribute": ("error", "is owned by the directory"),
    "user_in_other_org": ("error", "belongs to another organisation"),
    "public_domain": ("error", "is in a public email domain and cannot be claimed"),
    "no_admin_for_domain": ("error", "cannot be claimed: no administrator has that domain"),
    "admin_downgrade": ("error", "moves an administrator below the organisation's package"),
    "last_admin": ("error", "would delete the organisation's last administrator"),
    "user_not_found": ("warning", "is not a user of the organisation; nothing to delete"),
}


def severity_of(code: str) -> Severity:
    return CODES.get(code, ("error", ""))[0]


class IssueBuilder:
    """Collects issues for sets of rows; ``frame()`` returns them in row order."""

    def __init__(self, cells: pd.DataFrame, headers: dict[str, str], email: pd.Series) -> None:
        self._cells = cells
        self._headers = headers
        self._email = email
        self._parts: list[pd.DataFrame] = []

    def header(self, key: str) -> str:
        return self._headers.get(key, key)

    def cells(
        self,
        rows: pd.Index,
        key: str,
        code: str,
        fix: str,
        *,
        values: pd.Series | None = None,
        extra: pd.Series | str = "",
        severity: Severity | None = None,
    ) -> None:
        """One issue per row about the cell of ``key``: "<Header> '<value>' <what>: <fix>"."""
        if len(rows) == 0:
            return
        source = values if values is not None else self._column(key)
        value = source.reindex(rows).fillna("").astype(str)
        what = CODES.get(code, ("error", "is not valid"))[1]
        if isinstance(extra, pd.Series):
            extra = extra.reindex(rows).fillna("").astype(str)
        message = self.header(key) + " '" + value + "' " + what + extra + ": " + fix + "."
        self._add(rows, key, code, message, value, severity)

    def rows(
        self,
        rows: pd.Index,
        code: str,
        message: pd.Series | str,
        *,
        column: str = "email",
        values: pd.Series | None = None,
        severity: Severity | None = None,
    ) -> None:
        """One issue per row with a ready message (about the whole row by default)."""
        if len(rows) == 0:
            return
        if values is not None:
            value = values.reindex(rows).fillna("").astype(str)
        else:
            value = self._column(column).reindex(rows).fillna("").astype(str)
        if isinstance(message, pd.Series):
            message = message.reindex(rows).astype(str)
        self._add(rows, column, code, message, value, severity)

    def _column(self, key: str) -> pd.Series:
        if key in self._cells:
            return self._cells[key]
        return pd.Series("", index=self._cells.index)

    def _add(
        self,
        rows: pd.Index,
        key: str,
        code: str,
        message: pd.Series | str,
        value: pd.Series,
        severity: Severity | None,
    ) -> None:
        part = pd.DataFrame(
            {
                "row": rows.to_numpy(),
                "email": self._email.reindex(rows).fillna("").to_numpy(),
                "column": self.header(key),
                "code": code,
                "severity": severity or severity_of(code),
                "message": message.to_numpy() if isinstance(message, pd.Series) else message,
                "value": value.to_numpy(),
            }
        )
        self._parts.append(part)

    def extend(self, frame: pd.DataFrame) -> None:
        self._parts.append(frame[ISSUE_COLUMNS])

    def frame(self) -> pd.DataFrame:
        return concat_issues(self._parts)


def duplicate_rows(keys: pd.Series) -> tuple[pd.Index, pd.Series]:
    """Rows of the second and later occurrences of each key, and for each the row of the
    first occurrence."""
    return duplicate_codes(key_codes(keys), keys.index)


def duplicate_codes(codes: np.ndarray, index: pd.Index) -> tuple[pd.Index, pd.Series]:
    """``duplicate_rows`` for keys already coded as integers >= 0 (``key_codes``), one per
    row of ``index``.

    The first position of each code is a ``minimum.at`` over the positions (numpy, no
    Python per row). pandas' ``duplicated`` plus a lookup of the repeated keys hashed the
    strings twice (0.45 s for 1M emails)."""
    n = len(codes)
    if n == 0:
        return index[:0], pd.Series(dtype="int64")
    positions = np.arange(n)
    first = np.full(int(codes.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first, codes, positions)
    first_of_row = first[codes]
    dup = first_of_row != positions
    rows = index[dup]
    if len(rows) == 0:
        return rows, pd.Series(dtype="int64")
    return rows, pd.Series(index.to_numpy()[first_of_row[dup]], index=rows)


def key_codes(keys: pd.Series | pa.Array) -> np.ndarray:
    """An integer >= 0 per key, equal for equal keys (a missing key is a key of its own):
    one pass of Arrow's hash kernel, which releases the GIL (see ``codes_of``)."""
    encoded = pc.dictionary_encode(arrow_text(keys), null_encoding="encode")
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def codes_of(columns: list[pd.Series]) -> list[np.ndarray]:
    """``key_codes`` of several columns at once, in threads: hashing a million strings is
    ~0.2 s of Arrow work outside the GIL, so two columns take the time of one on two cores."""
    if len(columns) < 2:
        return [key_codes(c) for c in columns]
    with ThreadPoolExecutor(max_workers=len(columns)) as pool:
        return list(pool.map(key_codes, columns))


def concat_issues(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Issues frames joined and sorted by row (file-level first), stable within a row."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return issues_frame([])
    out = pd.concat(parts, ignore_index=True)
    out["row"] = out["row"].astype("Int64")
    order = out["row"].fillna(0).to_numpy().argsort(kind="stable")
    return out.iloc[order].reset_index(drop=True)
