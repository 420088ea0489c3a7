"""Row-local organisation rules (SPEC section 5, "against the org"). Pure functions.

Each rule looks at one row against the snapshot and adds issues with its SPEC code; rules that
need the whole plan (numbers, extensions and seats that other rows free or take, the last
administrator) live in ``accounting``. Sources: seed 000 (claims, directory sync), 001
(packages), 002 (administrator level), 003 (integrations, MiCollab).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport.digitkeys import all_keyed, digit_keys, found_in, picked_keys
from csvimport.issues import IssueBuilder
from csvimport.masks import arrow_text, member
from csvimport.plan import Rows, held

NAME_FIELDS = ("first_name", "last_name", "display_name")


def check(rows: Rows, b: IssueBuilder) -> None:
    """Run every row-local org rule."""
    for rule in (_inventory, _membership, _directory, _claims, _admin_level, _products, _pools):
        rule(rows, b)


def _inventory(rows: Rows, b: IssueBuilder) -> None:
    """``unknown_location``, ``unknown_site``, ``number_not_in_inventory``."""
    vals = rows.values
    checks: tuple[tuple[str, Collection[str] | pd.Series, str, str], ...] = (
        ("location", rows.snap.locations, "unknown_location", "use one of the org's locations"),
        ("preferred_site", rows.snap.sites, "unknown_site", "use one of the org's Webex sites"),
        (
            "phone_number",
            rows.snap.numbers["number"],
            "number_not_in_inventory",
            "use a number of the org's inventory, or add the number to the org first",
        ),
    )
    for fid, known, code, fix in checks:
        if fid not in vals:
            continue
        bad = _unknown(vals[fid], known)
        if bad.any():
            b.cells(rows.index[bad], fid, code, f"{fix} ({_examples(known)})")


def _unknown(values: pd.Series, known: Collection[str] | pd.Series) -> np.ndarray:
    """``(values != "") & ~member(values, known)``, with only the non-blank cells looked up:
    the known values are hashed either way (1.4M numbers of a big org), but a third of a
    file's phone cells are blank. Numbers are looked up by integer key (``digitkeys``):
    hashing the inventory as text cost ~0.4 s at 1.4M numbers."""
    filled = (values != "").to_numpy()
    haystack = arrow_text(known)
    if len(haystack) == 0 or not filled.any():
        return filled
    text = arrow_text(values)
    bad = filled.copy()
    keys = all_keyed(digit_keys(haystack))
    if keys is not None:
        bad[filled] = ~found_in(picked_keys(text, filled), keys)
        return bad
    if filled.all():
        found = pc.is_in(text, value_set=haystack)
        return ~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    found = pc.is_in(text.filter(pa.array(filled)), value_set=haystack)
    bad[filled] = ~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    return bad


def _examples(known: Collection[str] | pd.Series, count: int = 8) -> str:
    """The first few known names in order, for the message ("none" when there are none)."""
    if isinstance(known, pd.Series):
        first = known.drop_duplicates().sort_values().head(count)  # only when a row is bad
        return ", ".join(str(v) for v in first) or "none"
    return ", ".join(heapq.nsmallest(count, known)) or "none"


def _membership(rows: Rows, b: IssueBuilder) -> None:
    """``user_in_other_org``, ``missing_package``, ``user_not_found``."""
    b.rows(
        rows.index[rows.other_org.to_numpy()],
        "user_in_other_org",
        "the email belongs to a user of another customer organisation: ask that org's "
        "administrator to remove the user first, or use another address",
    )
    newcomer = np.flatnonzero((rows.add | rows.claim).to_numpy())
    package = rows.v.after["package"].iloc[newcomer]  # only the new users' (object column)
    b.rows(
        rows.index[newcomer[(package == "").to_numpy()]],
        "missing_package",
        "a new user needs a package: set one package column (e.g. Webex Calling) to TRUE",
    )
    absent = ~rows.exists & rows.deleting
    if absent.any():
        absent &= rows.v.email_key.ne("")
    b.rows(
        rows.index[absent.to_numpy()],
        "user_not_found",
        "every package is FALSE (delete), but the org has no user with this email: the row "
        "does nothing",
        severity="warning",
    )


def _directory(rows: Rows, b: IssueBuilder) -> None:
    """Directory sync on: no adds, claims or deletes; directory-owned names stay."""
    if not rows.snap.settings.directory_sync:
        return
    changing = rows.add | rows.claim | (rows.deleting & rows.exists)
    b.rows(
        rows.index[changing.to_numpy()],
        "directory_sync_enabled",
        "the org synchronises users from a directory: add, claim and delete users in the "
        "directory, not by file",
    )
    existing = rows.exists & ~rows.deleting
    for fid in NAME_FIELDS:
        if fid not in rows.values or fid not in rows.cur:
            continue
        new, old = rows.values[fid], rows.cur[fid].fillna("").astype(str)
        bad = existing & (new != "") & (new != old)
        b.cells(
            rows.index[bad.to_numpy()],
            fid,
            "directory_managed_attribute",
            "the directory owns this name: change it in the directory, or leave the cell blank",
        )


def _claims(rows: Rows, b: IssueBuilder) -> None:
    """Seed 000: a free account is claimed only from a non-public domain an admin shares."""
    if not rows.claim.any():
        return
    # Only claim rows need their domain; splitting every row's email is Python per row.
    domain = rows.v.email_key.where(rows.claim, "").str.replace(r"^.*@", "", regex=True)
    public = rows.claim & member(domain, rows.cat.public_domains)
    b.rows(
        rows.index[public.to_numpy()],
        "public_domain",
        "this free account uses a public email domain and cannot be claimed: invite the "
        "user with a company address instead",
    )
    users = rows.snap.users
    admins = users.index[(users["role"] == "full_admin").to_numpy()]
    admin_domains = set(pd.Series(admins, dtype=str).str.rsplit("@", n=1).str[-1])
    orphan = rows.claim & ~public & ~member(domain, admin_domains)
    b.rows(
        rows.index[orphan.to_numpy()],
        "no_admin_for_domain",
        "no administrator of the org has an email in this domain: add an administrator "
        "with an address in the domain first, then claim the user",
    )


def _admin_level(rows: Rows, b: IssueBuilder) -> None:
    """Seed 002: an administrator keeps at least the package level the org was created with.

    Only the rows of existing administrators can fall (a handful in a million-row file):
    they are picked first, and only their packages are looked at."""
    org_pkg = rows.snap.settings.package
    if not org_pkg or org_pkg not in rows.cat.packages:
        return
    floor = rows.cat.packages[org_pkg].level
    admin = (rows.cur["role"] == "full_admin").fillna(False).astype(bool) & rows.exists
    at = np.flatnonzero(admin.to_numpy())
    if not len(at):
        return
    package = rows.v.row_package.iloc[at]
    for pid, pkg in rows.cat.packages.items():
        if not pkg.level < floor:
            continue
        hit = rows.index[at[(package == pid).to_numpy()]]
        b.cells(
            hit,
            pid,
            "admin_downgrade",
            f"administrators need at least the org's package "
            f"{rows.cat.packages[org_pkg].header} (level {floor}): keep the administrator's "
            "package or remove the administrator role first",
            values=pd.Series("TRUE", index=hit),
        )


def _products(rows: Rows, b: IssueBuilder) -> None:
    """Seed 003: a product needs its integration; an integration may own the license."""
    on = set(rows.snap.settings.integrations)
    ops = rows.license_ops
    for lic in rows.cat.product_licenses:
        off = bool(lic.integration) and lic.integration not in on
        managed = bool(lic.managed_by) and lic.managed_by in on
        if not (off or managed):
            continue  # neither code applies: the operations need not be looked at
        mine = ops["license"] == lic.id
        if off:
            assign = ops[mine & (ops["op"] == "assign_license")]["row"]
            b.cells(
                pd.Index(assign),
                lic.id,
                "product_not_enabled",
                f"No licenses: {lic.header} is not enabled for this org; enable the "
                f"integration '{lic.integration}' first or set the cell to FALSE",
            )
            continue
        change = ops[mine]["row"]
        b.cells(
            pd.Index(change),
            lic.id,
            "license_managed_externally",
            f"{lic.header} licenses are controlled by the {lic.managed_by} integration; "
            "manage them there and leave this cell as it is",
        )


def _pools(rows: Rows, b: IssueBuilder) -> None:
    """``license_suspended``: the license's only pools are suspended or cancelled."""
    pools = rows.snap.pools
    if not _inactive_pools(rows):
        return  # every license with a pool has an active one: no row can fall here
    ops = rows.license_ops
    blocked = _product_blocked(rows)
    for lic in ops.loc[ops["op"] == "assign_license", "license"].unique():
        if lic not in rows.cat.packages and rows.cat.licenses[lic].kind == "basic":
            continue
        mine = pools[pools["license"] == lic]
        sub = rows.subscription_of(lic)
        if sub:
            mine = mine[mine["subscription"] == sub]
        if mine.empty or (mine["status"] == "active").any():
            continue
        idx = pd.Index(ops.loc[(ops["license"] == lic) & (ops["op"] == "assign_license"), "row"])
        idx = idx[~idx.isin(blocked.get(lic, []))]
        states = "/".join(sorted(set(mine["status"])))
        b.cells(
            idx,
            lic,
            "license_suspended",
            f"the org's {rows.cat.header_of(lic)} pool is {states}: reactivate the "
            "subscription or set the cell to FALSE",
            values=pd.Series("TRUE", index=idx),
        )


def _inactive_pools(rows: Rows) -> bool:
    """Whether some license has pools (of its header's subscription), none of them active:
    the only case of ``license_suspended``, decided on the few pools before any of the
    plan's million license operations is looked at."""
    pools = rows.snap.pools
    for lic in pools["license"].unique():
        mine = pools[pools["license"] == lic]
        sub = rows.subscription_of(lic)
        if sub:
            mine = mine[mine["subscription"] == sub]
        if not mine.empty and not (mine["status"] == "active").any():
            return True
    return False


def _product_blocked(rows: Rows) -> dict[str, list[int]]:
    """Rows whose product is not enabled: that code wins over the pool codes."""
    on = set(rows.snap.settings.integrations)
    ops = rows.license_ops
    out: dict[str, list[int]] = {}
    for lic in rows.cat.product_licenses:
        if lic.integration and lic.integration not in on:
            out[lic.id] = list(ops.loc[ops["license"] == lic.id, "row"])
    return out


__all__ = ["check", "held"]
