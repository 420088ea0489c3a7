"""Customer rows from the file alone (and the loaded templates): SPEC section 11's cell rules.

The same machinery as the users' validation: a pandera schema declares each column's format
check (lazy, so every failure of every row is found at once, keyed by the spreadsheet row
number), and cross-row and requirement rules run as pandas expressions over the whole file;
issues are built by ``issues.IssueBuilder`` and keyed by the External Customer ID.

Decisions:
* The template is resolved first (by Provisioning ID or template name, case-insensitively), and
  its country, language and time zone fill the row's blank cells *before* any check, so a row
  that leaves Country blank passes when its template has one.
* The Packages cell is a list (``;`` or ``,``) of package ids or names, matched like headers;
  the packages are kept as a sorted tuple per row so that "same packages" is plain equality.
* A quantity is a whole number of at least 1; a blank quantity cell means no limit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from csvimport.customers import codes
from csvimport.customers.catalog import QUANTITY, CustomerCatalog
from csvimport.customers.templates import time_zones
from csvimport.issues import IssueBuilder
from csvimport.model import Table
from csvimport.validate import EMAIL_RE, _duplicates

FILLED_BY_TEMPLATE = {"country": "country", "language": "language", "time_zone": "timezone"}
_SPLIT = r"\s*[;,]\s*"


@dataclass
class CustomerRows:
    """What validation hands to the planner.

    ``cells``: text per field id and quantity key (every one, "" when absent or blank), after
    the template filled the blanks; index = row number. ``packages``: the row's known package
    ids (catalogue order). ``limits``: per package id, the row's quantity (``Int64``, NA =
    none given). ``template``: the resolved provisioning id ("" when none).
    """

    table: Table
    cells: pd.DataFrame
    packages: pd.Series
    limits: pd.DataFrame
    template: pd.Series
    issues: pd.DataFrame
    headers: dict[str, str] = field(default_factory=dict)


def _texts(table: Table, catalog: CustomerCatalog) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every field and quantity key as a text column, and the header each one goes by."""
    keys = [*catalog.fields, *(p.quantity_key for p in catalog.packages.values())]
    headers = {k: catalog.header_of(k) for k in keys}
    cells = pd.DataFrame({k: pd.Series("", index=table.frame.index, dtype="str") for k in keys})
    for col in table.columns:
        if col.key in headers and col.kind in ("field", QUANTITY):
            cells[col.key] = table.frame[col.index]
            headers[col.key] = col.header
    return cells, headers


def _resolve_templates(cells: pd.DataFrame, templates: pd.DataFrame, b: IssueBuilder) -> pd.Series:
    """The provisioning id each row names; fills the template's values into blank cells."""
    names = dict(zip(templates["name"].str.casefold(), templates.index, strict=True))
    names.update({pid.casefold(): pid for pid in templates.index})
    given = cells["provisioning_id"]
    resolved = given.str.casefold().map(names).fillna("").astype("str")
    unknown = (given != "") & (resolved == "")
    b.cells(
        given.index[unknown.to_numpy()],
        "provisioning_id",
        "unknown_template",
        codes.FIX["unknown_template"],
    )
    for fid, key in FILLED_BY_TEMPLATE.items():
        own = templates[key].reindex(resolved).fillna("").astype("str").to_numpy()
        cells[fid] = cells[fid].where(cells[fid] != "", pd.Series(own, index=cells.index))
    return resolved


def _check(code: str, ok: Callable[[pd.Series], pd.Series]) -> pa.Check:
    """A pandera check that passes blank cells (their absence is ``missing_required_field``)."""

    def run(s: pd.Series) -> pd.Series:
        passed: pd.Series = (s == "") | ok(s)
        return passed

    return pa.Check(run, error=code)


def _schema(catalog: CustomerCatalog) -> pa.DataFrameSchema:
    """One pandera column per field and quantity key, with the check its type calls for."""
    rules = catalog.rules
    zones = time_zones()
    by_type: dict[str, list[pa.Check]] = {
        "email": [
            _check("invalid_email", lambda s: s.str.fullmatch(EMAIL_RE)),
            _check("invalid_email", lambda s: s.str.split("@").str[0].str.len() <= 64),
        ],
        "country": [_check("invalid_country", lambda s: s.str.upper().isin(catalog.countries))],
        "external_id": [
            _check("invalid_external_id", lambda s: s.str.fullmatch(rules.external_id_pattern))
        ],
        "address": [_check("field_too_long", lambda s: s.str.len() <= rules.address_max_length)],
        "company_name": [
            _check(
                "invalid_company_name",
                lambda s: ~s.str.contains(rules.company_name_forbidden, regex=False),
            )
        ],
        "time_zone": [_check("invalid_time_zone", lambda s: s.isin(zones))],
    }
    quantity = [_check("invalid_quantity", lambda s: s.str.fullmatch(r"0*[1-9]\d{0,8}"))]
    columns = {f.id: pa.Column(str, by_type.get(f.type, [])) for f in catalog.fields.values()}
    columns.update({p.quantity_key: pa.Column(str, quantity) for p in catalog.packages.values()})
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


def _format_issues(cells: pd.DataFrame, catalog: CustomerCatalog, b: IssueBuilder) -> None:
    """Lazy pandera validation; each failure case (row, column, check) becomes an issue."""
    try:
        _schema(catalog).validate(cells, lazy=True)
    except pa.errors.SchemaErrors as err:
        found = err.failure_cases.dropna(subset=["index"])
        found = found.drop_duplicates(["index", "column", "check"])
        fixes = {**codes.FIX, "field_too_long": _too_long_fix(catalog)}
        for (key, code), cases in found.groupby(["column", "check"], sort=False):
            b.cells(
                pd.Index(cases["index"].astype("int64")),
                str(key),
                str(code),
                fixes.get(str(code), "correct the value"),
            )


def _too_long_fix(catalog: CustomerCatalog) -> str:
    limit = catalog.rules.address_max_length
    return f"shorten it to at most {limit} characters (use Address Line 2 for the rest)"


def _packages(cells: pd.DataFrame, catalog: CustomerCatalog, b: IssueBuilder) -> pd.Series:
    """Each row's known packages as a tuple in catalogue order; unknown names are issues."""
    tokens = cells["packages"].str.split(_SPLIT, regex=True).explode()
    tokens = tokens[tokens.fillna("") != ""]
    ids = tokens.map(lambda t: catalog.package_of(str(t))).fillna("")
    unknown = tokens[ids == ""]
    if len(unknown):
        values = unknown.groupby(level=0).agg("; ".join)
        known = ", ".join(catalog.packages)
        b.cells(
            pd.Index(values.index),
            "packages",
            "unknown_package",
            f"use package ids or names separated by ';' (known: {known})",
            values=values,
        )
    order = {pid: i for i, pid in enumerate(catalog.packages)}
    known_ids = ids[ids != ""]
    chosen: dict[int, set[str]] = defaultdict(set)
    for row, pid in zip(known_ids.index.astype("int64"), known_ids.astype(str), strict=True):
        chosen[int(row)].add(pid)
    ordered = [tuple(sorted(chosen.get(int(r), ()), key=order.__getitem__)) for r in cells.index]
    return pd.Series(ordered, index=cells.index, dtype=object)


def _dependencies(packages: pd.Series, catalog: CustomerCatalog, b: IssueBuilder) -> None:
    """``package_dependency``: an add-on without a package it needs."""
    calling = {p.id for p in catalog.packages.values() if p.calling}
    for addon in catalog.packages.values():
        if not (addon.needs_calling or addon.needs_any):
            continue
        needed = set(addon.needs_any) | (calling if addon.needs_calling else set())
        unmet = packages.map(lambda ps, a=addon.id, n=needed: a in ps and not n & set(ps))
        names = _one_of([catalog.packages[p].header for p in catalog.packages if p in needed])
        if addon.needs_calling:
            names = f"a calling package ({names})"
        b.cells(
            packages.index[unmet.to_numpy(dtype=bool)],
            "packages",
            "package_dependency",
            f"{addon.header} needs {names}; add one of them to Packages, or remove {addon.header}",
        )


def _one_of(names: list[str]) -> str:
    """``A, B or C``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _limits(cells: pd.DataFrame, catalog: CustomerCatalog) -> pd.DataFrame:
    """Quantities as ``Int64`` per package id (NA: none, or not a valid number)."""
    out = {}
    for pkg in catalog.packages.values():
        text = cells[pkg.quantity_key]
        valid = text.str.fullmatch(r"0*[1-9]\d{0,8}").fillna(False).to_numpy(dtype=bool)
        values = pd.array([pd.NA] * len(text), dtype="Int64")
        if valid.any():
            values[valid] = text[valid].astype("int64").to_numpy()
        out[pkg.id] = values
    return pd.DataFrame(out, index=cells.index)


def _required(
    cells: pd.DataFrame, packages: pd.Series, catalog: CustomerCatalog, b: IssueBuilder
) -> None:
    """``missing_required_field``: always-required cells, and calling ones for calling rows."""
    calling_ids = {p.id for p in catalog.packages.values() if p.calling}
    calling = packages.map(lambda ps: bool(calling_ids & set(ps))).to_numpy(dtype=bool)
    for f in catalog.fields.values():
        if f.required == "no":
            continue
        blank = (cells[f.id] == "").to_numpy().copy()
        header = b.header(f.id)
        if f.required == "always":
            message = f"{header} is empty: every customer needs it; fill it in"
        else:
            blank &= calling
            message = f"{header} is empty: a customer with a calling package needs it; fill it in"
        if f.id == "provisioning_id":
            message += " (the Provisioning ID or name of an onboarding template)"
        b.rows(cells.index[blank], "missing_required_field", message, column=f.id)


def _confirmed(cells: pd.DataFrame, catalog: CustomerCatalog, b: IssueBuilder) -> None:
    """Supported Location Confirmed must be TRUE (seed 002); other words are invalid."""
    text = cells["location_confirmed"]
    folded = text.str.casefold()
    is_true = folded.isin(catalog.true_words).to_numpy()
    is_false = folded.isin(catalog.false_words).to_numpy()
    invalid = ~(is_true | is_false) & (text != "").to_numpy()
    b.cells(
        text.index[invalid], "location_confirmed", "invalid_boolean", codes.FIX["invalid_boolean"]
    )
    b.cells(
        text.index[~is_true & ~invalid],
        "location_confirmed",
        "location_not_confirmed",
        codes.FIX["location_not_confirmed"],
    )


def validate(table: Table, catalog: CustomerCatalog, templates: pd.DataFrame) -> CustomerRows:
    """Every check of a customer file that needs no org; ``templates`` indexed by id."""
    cells, headers = _texts(table, catalog)
    b = IssueBuilder(cells, headers, cells["external_id"])
    template = _resolve_templates(cells, templates, b)
    packages = _packages(cells, catalog, b)
    _required(cells, packages, catalog, b)
    _format_issues(cells, catalog, b)
    _dependencies(packages, catalog, b)
    _confirmed(cells, catalog, b)
    key = cells["external_id"]
    _duplicates(
        key,
        key != "",
        "external_id",
        "duplicate_external_id",
        b,
        codes.FIX["duplicate_external_id"],
    )
    cells["country"] = cells["country"].str.upper()  # after the checks: issues show the input
    return CustomerRows(
        table, cells, packages, _limits(cells, catalog), template, b.frame(), headers
    )
