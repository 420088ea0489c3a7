"""The customers diff: valid rows against the store's state, to operations. Pure: no I/O.

Keyed on External Customer ID (SPEC 11):

* a new id without Existing Org ID is ``create_customer``: a new org whose id is the External
  Customer ID (the org id is the partner's external id for the customer, SPEC 9);
* a new id with Existing Org ID is ``attach_customer``, or ``request_approval`` when one of
  seed 004's criteria holds (100 users or more, a verified domain, a claimed domain); the
  partner's role is decided by the org's licenses (full administrator when it has no active
  pool, seed 004);
* a known id is ``update_customer`` when its packages (the complete list, as the Wholesale
  API's PUT), limits or address changed, else unchanged. Dropping a package is the warning
  ``package_downgrade``.

Rules against the store are checked on every row that has the cells they need, so a row shows
all its problems at once; only rows without errors become operations. The whole file counts:
two rows attaching the same org are ``org_already_managed`` from the second on. A known
customer stays with its org: its row's Existing Org ID is not part of an update, and neither
are its name or template (SPEC 11: packages, limits and address). A quantity given for a
package the row does not order is ignored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from csvimport.customers.catalog import CustomerCatalog
from csvimport.customers.store import CustomerState
from csvimport.customers.validate import CustomerRows
from csvimport.issues import IssueBuilder
from csvimport.model import Plan
from csvimport.validate import _duplicates

ADDRESS = ("address_line_1", "address_line_2", "city", "state", "zip")
OP_COLUMNS = ["op", "row", "email", "license", "data", "external_id"]


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=OP_COLUMNS)
    return frame.astype({"op": object, "email": object, "external_id": object})


class _Lookup:
    """A frame's columns as Python lists, read by index label.

    Building payloads row by row with ``.loc`` costs ~100 µs a row; ``to_dict`` iterates the
    arrow-backed strings cell by cell. ``tolist`` per column is one fast conversion each.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.position = {label: i for i, label in enumerate(frame.index.tolist())}
        self.columns = {str(c): frame[c].tolist() for c in frame.columns}

    def __call__(self, label: Any, column: str) -> Any:
        return self.columns[column][self.position[label]]

    def record(self, label: Any) -> dict[str, Any]:
        i = self.position[label]
        return {c: values[i] for c, values in self.columns.items()}


class _Planner:
    """One planning pass; holds the inputs so each rule stays a short method."""

    def __init__(self, rows: CustomerRows, state: CustomerState, cat: CustomerCatalog) -> None:
        self.rows, self.state, self.cat = rows, state, cat
        self.cells = rows.cells
        self.b = IssueBuilder(self.cells, rows.headers, self.cells["external_id"])
        ext = self.cells["external_id"]
        self.known = (ext != "") & ext.isin(state.customers.index)
        self.org = self.cells["existing_org_id"]
        self.creating = (ext != "") & ~self.known & (self.org == "")
        self.attaching = (ext != "") & ~self.known & (self.org != "")
        # Row-wise views for building payloads: one conversion each, then dict lookups.
        self.records = _Lookup(self.cells)
        self.limits = _Lookup(rows.limits)
        self.packages = dict(zip(map(int, rows.packages.index), rows.packages, strict=True))
        self.template = dict(zip(map(int, rows.template.index), rows.template, strict=True))
        self.templates = _Lookup(state.templates)
        self.customers = _Lookup(state.customers)
        self.orgs = _Lookup(state.orgs)

    # -- rules -----------------------------------------------------------------------------

    def check_creates(self) -> None:
        ext, email = self.cells["external_id"], self.cells["admin_email"].str.lower()
        taken = self.creating & (ext.isin(self.state.orgs.index) | ext.isin(self.state.managed))
        self.b.cells(
            self._rows(taken),
            "external_id",
            "org_id_taken",
            "a created customer's org takes its External Customer ID: choose another "
            "one, or give the org's id as Existing Org ID to attach it",
        )
        in_use = self.creating & (email != "") & email.isin(self.state.emails)
        self.b.cells(
            self._rows(in_use),
            "admin_email",
            "user_in_other_org",
            "choose an administrator address that is not a Webex user yet, or attach "
            "that user's org with Existing Org ID",
        )
        usable = self.creating & (email != "")
        _duplicates(
            email,
            usable,
            "admin_email",
            "duplicate_email",
            self.b,
            "give each new customer its own administrator",
        )

    def check_attaches(self) -> None:
        orgs = self.state.orgs
        org = self.org
        exists = self.attaching & org.isin(orgs.index[orgs["kind"] == "customer"])
        self.b.cells(
            self._rows(self.attaching & ~exists),
            "existing_org_id",
            "unknown_org",
            "check the org id in Control Hub (Account), or leave the cell blank to "
            "create a new org",
        )
        managed = self.state.managed
        holder = org.map(lambda o: managed.get(o, "")).astype("str")
        other = exists & (holder != "") & (holder != self.cells["external_id"])
        self.b.cells(
            self._rows(other),
            "existing_org_id",
            "org_already_managed",
            "an org is managed as one customer: update that customer instead",
            extra=" (as customer " + holder.astype(str) + ")",
        )
        _duplicates(
            org,
            exists & ~other,
            "existing_org_id",
            "org_already_managed",
            self.b,
            "attach each org once",
        )
        trial = exists & org.isin(orgs.index[orgs["trial"].astype(bool)])
        self.b.cells(
            self._rows(trial),
            "existing_org_id",
            "trial_org_not_supported",
            "converting a trial org to a wholesale customer is not supported (seed "
            "004): create a new org instead, or convert the trial first",
        )

    def check_updates(self) -> dict[int, dict[str, Any]]:
        """``package_downgrade`` warnings; returns each changed known row's changes."""
        changes: dict[int, dict[str, Any]] = {}
        dropped_rows: list[int] = []
        dropped_names: list[str] = []
        for row in map(int, self._rows(self.known)):
            before = self.customers.record(self.cell(row, "external_id"))
            changed = self._changes(row, before)
            if changed:
                changes[row] = changed
            dropped = [p for p in before["packages"] if p not in self.packages[row]]
            if dropped and self.packages[row]:
                dropped_rows.append(row)
                dropped_names.append(", ".join(self._header(p) for p in dropped))
        self.b.cells(
            pd.Index(dropped_rows),
            "packages",
            "package_downgrade",
            "packages are the complete list (as the Wholesale API's update), so the update "
            "removes it from the customer; add it to Packages to keep it",
            values=pd.Series(dropped_names, index=dropped_rows, dtype=object),
        )
        return changes

    def _header(self, package: str) -> str:
        return self.cat.packages[package].header if package in self.cat.packages else package

    def _changes(self, row: int, before: dict[str, Any]) -> dict[str, Any]:
        after = {
            "packages": list(self.packages[row]),
            "limits": self._limits(row),
            "address": self._address(row),
        }
        was = {
            "packages": list(before["packages"]),
            "limits": dict(before["limits"] or {}),
            "address": dict(before["address"] or {}),
        }
        return {k: {"from": was[k], "to": v} for k, v in after.items() if was[k] != v}

    # -- payloads: plain dict lookups per row (pandas .loc per row would dominate) ----------

    def _rows(self, mask: pd.Series) -> pd.Index:
        return self.cells.index[mask.to_numpy(dtype=bool)]

    def cell(self, row: int, key: str) -> str:
        return str(self.records(row, key))

    def _limits(self, row: int) -> dict[str, int | None]:
        found = {p: self.limits(row, p) for p in self.packages[row]}
        return {p: None if pd.isna(q) else int(q) for p, q in found.items()}

    def _address(self, row: int) -> dict[str, str]:
        cells = {k: self.cell(row, k) for k in ADDRESS}
        return {k: v for k, v in cells.items() if v}

    def _admin_package(self, packages: tuple[str, ...]) -> str | None:
        leveled = [self.cat.packages[p] for p in packages if self.cat.packages[p].level]
        return max(leveled, key=lambda p: p.level or 0).id if leveled else None

    def _attributes(self, row: int) -> dict[str, Any]:
        c = self.records.record(row)
        pid = self.template[row]
        template = self.templates.record(pid)
        packages = self.packages[row]
        return {
            "external_id": c["external_id"],
            "company_name": c["company_name"],
            "admin_email": c["admin_email"],
            "provisioning_id": pid,
            "country": c["country"],
            "language": c["language"] or None,
            "time_zone": c["time_zone"] or None,
            "location_name": c["location_name"] or self.cat.rules.default_location,
            "address": self._address(row),
            "packages": list(packages),
            "limits": self._limits(row),
            "admin_package": self._admin_package(packages),
            "subscription": template["subscription"] or None,
            "authentication": template["authentication"],
            "email_invitations": bool(template["email_invitations"]),
            "admin_invites_on_attach": bool(template["allow_admin_invites_on_attach"]),
        }

    def _approval_reasons(self, org: dict[str, Any]) -> list[str]:
        """Seed 004's criteria that hold for ``org``; any one needs the org's approval."""
        reasons = []
        if org["users"] >= self.cat.rules.approval_min_users:
            reasons.append(
                f"the org has {org['users']} users ({self.cat.rules.approval_min_users} or more)"
            )
        if org["verified"]:
            reasons.append("the org has a verified email domain")
        if org["claimed"]:
            reasons.append("the org has claimed its domain")
        return reasons

    def operations(
        self, changes: dict[int, dict[str, Any]], valid: pd.Index
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        known = set(map(int, self._rows(self.known)))
        creating = set(map(int, self._rows(self.creating)))
        for row in (int(r) for r in valid):
            ext = self.cell(row, "external_id")
            base = {"row": row, "email": self.cell(row, "admin_email"), "license": None,
                    "external_id": ext}  # fmt: skip
            if row in known:
                if row in changes:
                    subscription = self.templates(self.template[row], "subscription") or None
                    data = {"org_id": self.customers(ext, "org_id"), "subscription": subscription,
                            "changes": changes[row]}  # fmt: skip
                    out.append({**base, "op": "update_customer", "data": data})
                continue
            attrs = self._attributes(row)
            if row in creating:
                attrs.update(org_id=ext, partner_role="full_admin")
                out.append({**base, "op": "create_customer", "data": {"attributes": attrs}})
                continue
            attrs["org_id"] = org_id = self.cell(row, "existing_org_id")
            org = self.orgs.record(org_id)
            reasons = self._approval_reasons(org)
            if reasons:
                attrs["approval_reasons"] = reasons
                out.append({**base, "op": "request_approval", "data": {"attributes": attrs}})
            else:
                attrs["partner_role"] = partner_role(bool(org["licensed"]))
                out.append({**base, "op": "attach_customer", "data": {"attributes": attrs}})
        return out


def partner_role(licensed: bool) -> str:
    """Seed 004: provisioning administrator, or full administrator when the org has no
    licenses or only suspended or cancelled ones."""
    return "provisioning_admin" if licensed else "full_admin"


def make_plan(
    rows: CustomerRows, state: CustomerState, cat: CustomerCatalog, sha256: str | None
) -> tuple[Plan, pd.DataFrame]:
    """The plan of the file's valid rows, and the issues found against the store."""
    planner = _Planner(rows, state, cat)
    planner.check_creates()
    planner.check_attaches()
    changes = planner.check_updates()
    found = planner.b.frame()
    every = pd.concat([rows.issues, found])
    errors = every.loc[(every["severity"] == "error") & every["row"].notna(), "row"]
    valid = rows.cells.index.difference(pd.Index(errors.astype("int64").unique()))
    ops = _frame(planner.operations(changes, valid))
    # Customers have no mode; "add-remove" is the nearest meaning (packages are complete lists)
    # and is never shown: reports print a plan without an org with a null mode.
    plan = Plan(org=None, mode="add-remove", state_version=None, sha256=sha256, operations=ops)
    return plan, found


__all__ = ["OP_COLUMNS", "make_plan", "partner_role"]
