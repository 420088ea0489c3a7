"""``org export``: an org's users as an import-ready table (SPEC 8).

The table is built so that validating it against the same org plans nothing, in either mode:
every license cell is explicit (TRUE/FALSE), except that a user without a package has blank
package cells (FALSE everywhere would delete the user in add-remove mode). Files are written by
``report``; this module only shapes the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from csvimport.catalog import Catalog
from csvimport.store.snapshot import OrgSnapshot


def export_columns(snapshot: OrgSnapshot | None, catalog: Catalog) -> list[tuple[str, str]]:
    """``(kind, key)`` of every exported column, in order: fields, packages, licenses.

    Product licenses appear only when the org has a pool of them (all of them without an org).
    """
    pooled = None if snapshot is None else set(snapshot.pools["license"])
    cols = [("field", f.id) for f in catalog.fields.values()]
    cols += [("package", p) for p in catalog.packages]
    cols += [("basic", lic.id) for lic in catalog.basic_licenses]
    cols += [
        ("product", lic.id)
        for lic in catalog.product_licenses
        if pooled is None or lic.id in pooled
    ]
    return cols


def org_header(snapshot: OrgSnapshot | None, catalog: Catalog) -> list[str]:
    """The header of an export or a template (no users)."""
    return [catalog.header_of(key) for _, key in export_columns(snapshot, catalog)]


def org_rows(snapshot: OrgSnapshot, catalog: Catalog) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: every user of the org, one row each, sorted by email."""
    users = snapshot.users
    lics = snapshot.licenses
    package = users["package"].to_numpy(dtype=object)
    columns: list[pd.Series] = []
    for kind, key in export_columns(snapshot, catalog):
        if kind == "field":
            values = users[key] if key in users.columns else pd.Series("", index=users.index)
            columns.append(values.astype("str"))
            continue
        if kind == "package":
            flags = np.where(package == key, "TRUE", "FALSE")
            cells = np.where(package == "", "", flags)
        else:
            has = users.index.isin(lics.loc[lics["license"] == key, "email"])
            cells = np.where(has, "TRUE", "FALSE")
        columns.append(pd.Series(cells, index=users.index, dtype="str"))
    header = org_header(snapshot, catalog)
    if users.empty:
        return header, []
    table = pd.concat(columns, axis=1, ignore_index=True)
    return header, table.to_numpy(dtype=object).tolist()
