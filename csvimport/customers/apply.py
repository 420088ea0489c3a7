"""Carry out a customers plan: one transaction, bulk statements, an audit event per operation.

The same guarantees as a users apply (``csvimport.apply``): all or nothing (any error rolls the
whole plan back: exit 5, nothing applied), every org the plan changes is checked against the
version it was planned on (exit 4 when it moved on) and bumped by one, and each operation leaves
an ``audit_events`` row with what it changed. What each operation writes:

* ``create_customer``: the org (id = External Customer ID, name = Company Name, package = the
  highest-level package), its HQ location, a Webex site when a package recommends one, one pool
  per package (its limit, the template's subscription), the administrator as ``full_admin``
  holding that package and the org's default licenses, the org's profile (the template's
  authentication, language, country, time zone) and the customer, ``provisioned``.
* ``attach_customer``: the packages' pools in the existing org and the customer with the
  partner's role. Nothing else of the org: its name, profile, users and roles stay (seed 004).
* ``request_approval``: the customer alone, ``pending_approval``; ``approve`` later attaches.
* ``update_customer``: the customer's packages, limits and address; for a provisioned customer
  its pools follow: new packages get pools, changed limits change them, dropped packages'
  pools are cancelled (kept, so the seats' history stays; re-adding reactivates them).

The pools this engine creates carry the order id ``wholesale:<External Customer ID>``, which
tells them apart from pools of partner orders (``orders assign``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from csvimport import catalog as users_catalog
from csvimport.customers.catalog import CustomerCatalog
from csvimport.customers.catalog import default as default_catalog
from csvimport.customers.plan import partner_role
from csvimport.model import CUSTOMER_OPERATION_KINDS, Plan, Refused, StaleOrBusy
from csvimport.store import snapcache
from csvimport.store.db import transaction
from csvimport.store.models import (
    AuditEvent,
    Customer,
    Location,
    Org,
    OrgProfile,
    Pool,
    Site,
    Template,
    User,
    UserLicense,
    utcnow,
)


def wholesale_order(external_id: str) -> str:
    """The order id of the pools a customer's packages provide."""
    return f"wholesale:{external_id}"


class _Writer:
    """Collects the rows of every table, then writes each table in one statement."""

    def __init__(self, conn: Connection, job_id: str, cat: CustomerCatalog) -> None:
        self.conn, self.job_id, self.cat = conn, job_id, cat
        self.rows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.bumped: set[str] = set()
        self.count = 0

    def audit(self, op: dict[str, Any], org: str, before: Any, after: Any) -> None:
        self.count += 1
        self.rows[AuditEvent].append(
            {
                "job_id": self.job_id,
                "org_id": org,
                "seq": self.count,
                "op": op["op"],
                "row": op["row"],
                "email": str(op["email"]).lower() or None,
                "license": None,
                "before": before,
                "after": after,
            }
        )

    def pools(self, org: str, attrs: dict[str, Any]) -> None:
        for pkg in attrs["packages"]:
            self.rows[Pool].append(
                {
                    "org_id": org,
                    "license": pkg,
                    "quantity": attrs["limits"].get(pkg),
                    "status": "active",
                    "order_id": wholesale_order(attrs["external_id"]),
                    "subscription": attrs.get("subscription"),
                }
            )

    def customer(self, attrs: dict[str, Any], status: str, role: str | None) -> None:
        now = utcnow()
        self.rows[Customer].append(
            {
                "external_id": attrs["external_id"],
                "company_name": attrs["company_name"],
                "admin_email": attrs["admin_email"],
                "org_id": attrs["org_id"],
                "provisioning_id": attrs["provisioning_id"],
                "status": status,
                "partner_role": role,
                "packages": attrs["packages"],
                "limits": attrs["limits"],
                "address": attrs["address"],
                "country": attrs["country"],
                "language": attrs["language"],
                "time_zone": attrs["time_zone"],
                "location_name": attrs["location_name"],
                "job_id": self.job_id,
                "created_at": now,
                "updated_at": now,
            }
        )

    def create(self, op: dict[str, Any]) -> None:
        a = op["data"]["attributes"]
        org, admin = a["org_id"], a["admin_email"]
        users = users_catalog.default()
        self.rows[Org].append(
            {
                "id": org,
                "name": a["company_name"],
                "kind": "customer",
                "package": a["admin_package"],
                "directory_sync": False,
                "integrations": [],
                "default_licenses": users.default_licenses,
                "verified_domains": [],
                "claimed_domains": [],
                "trial": False,
                "state_version": 1,
            }
        )
        self.rows[Location].append({"org_id": org, "name": a["location_name"]})
        if any(self.cat.packages[p].wants_site for p in a["packages"]):
            self.rows[Site].append({"org_id": org, "name": self.cat.rules.site.format(org=org)})
        self.pools(org, a)
        self.rows[User].append(
            {
                "org_id": org,
                "email": admin.lower(),
                "email_display": admin,
                "role": "full_admin",
                "package": a["admin_package"],
                "location": a["location_name"],
            }
        )
        self.rows[UserLicense] += [
            {"org_id": org, "email": admin.lower(), "license": lic}
            for lic in users.default_licenses
        ]
        self.rows[OrgProfile].append(
            {
                "org_id": org,
                "authentication": a["authentication"],
                "language": a["language"],
                "country": a["country"],
                "time_zone": a["time_zone"],
                "email_invitations": a["email_invitations"],
            }
        )
        self.customer(a, "provisioned", "full_admin")
        self.audit(op, org, None, a)

    def attach(self, op: dict[str, Any]) -> None:
        a = op["data"]["attributes"]
        self.pools(a["org_id"], a)
        self.customer(a, "provisioned", a["partner_role"])
        self.bumped.add(a["org_id"])
        self.audit(op, a["org_id"], None, a)

    def request(self, op: dict[str, Any]) -> None:
        a = op["data"]["attributes"]
        self.customer(a, "pending_approval", None)
        self.audit(op, a["org_id"], None, a)

    def update(self, op: dict[str, Any], status: str) -> None:
        data = op["data"]
        changes, org = data["changes"], data["org_id"]
        values = {k: c["to"] for k, c in changes.items()}
        self.conn.execute(
            update(Customer)
            .where(Customer.external_id == op["external_id"])
            .values(**values, job_id=self.job_id, updated_at=utcnow())
        )
        if status == "provisioned" and ("packages" in changes or "limits" in changes):
            self.repool(op)
            self.bumped.add(org)
        before = {k: c["from"] for k, c in changes.items()}
        self.audit(op, org, before, values)

    def repool(self, op: dict[str, Any]) -> None:
        """Make the customer's wholesale pools match its packages and limits."""
        data = op["data"]
        org, order = data["org_id"], wholesale_order(op["external_id"])
        packages = data["changes"].get("packages", {}).get("to")
        limits = data["changes"].get("limits", {}).get("to")
        current = self.conn.execute(
            select(Customer.packages, Customer.limits).where(
                Customer.external_id == op["external_id"]
            )
        ).one()
        packages = packages if packages is not None else list(current.packages)
        limits = limits if limits is not None else dict(current.limits)
        pools = {
            r.license: r.id
            for r in self.conn.execute(
                select(Pool.id, Pool.license).where(Pool.org_id == org, Pool.order_id == order)
            )
        }
        for lic, pool_id in pools.items():
            status = "active" if lic in packages else "cancelled"
            self.conn.execute(
                update(Pool)
                .where(Pool.id == pool_id)
                .values(status=status, quantity=limits.get(lic))
            )
        for pkg in packages:
            if pkg not in pools:
                self.rows[Pool].append(
                    {
                        "org_id": org,
                        "license": pkg,
                        "quantity": limits.get(pkg),
                        "status": "active",
                        "order_id": order,
                        "subscription": data.get("subscription"),
                    }
                )

    def flush(self) -> None:
        """Every collected row, parents first; then the changed orgs' versions."""
        for model in (
            Org,
            Location,
            Site,
            Pool,
            User,
            UserLicense,
            OrgProfile,
            Customer,
            AuditEvent,
        ):
            if self.rows[model]:
                self.conn.execute(insert(model), self.rows[model])
        for org in sorted(self.bumped):
            snapcache.carry_forward(self.conn, org)  # pools and profiles: none of it cached
            self.conn.execute(
                update(Org).where(Org.id == org).values(state_version=Org.state_version + 1)
            )


def _check_versions(conn: Connection, versions: dict[str, int]) -> None:
    """Every org the plan changes is still at the version it was planned on (locked)."""
    for org, planned in sorted(versions.items()):
        stmt = select(Org.state_version).where(Org.id == org)
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        now = conn.execute(stmt).scalar()
        if now != planned:
            raise StaleOrBusy(
                f"the org {org} changed since the plan was made (plan version {planned}, "
                f"org now {now})"
            )


def apply_customers(
    engine: Engine,
    plan: Plan,
    job_id: str,
    versions: dict[str, int],
    statuses: dict[str, str],
    *,
    fail_after: int | None = None,
    catalog: CustomerCatalog | None = None,
) -> None:
    """Apply ``plan`` in one transaction.

    ``versions``: the state version of every existing org the plan changes, as planned;
    ``statuses``: each updated customer's status. Raises ``StaleOrBusy`` when an org moved on;
    any other error (also the test hook ``fail_after``: that many operations, then a
    RuntimeError) rolls everything back and is re-raised.
    """
    ops = [{str(k): v for k, v in op.items()} for op in plan.operations.to_dict("records")]
    for op in ops:
        if op["op"] not in CUSTOMER_OPERATION_KINDS:
            raise ValueError(f"row {op['row']}: unknown operation {op['op']!r}")
        op["row"] = None if pd.isna(op["row"]) else int(op["row"])
    with transaction(engine) as conn:
        _check_versions(conn, versions)
        writer = _Writer(conn, job_id, catalog or default_catalog())
        for done, op in enumerate(ops, start=1):
            if op["op"] == "create_customer":
                writer.create(op)
            elif op["op"] == "attach_customer":
                writer.attach(op)
            elif op["op"] == "request_approval":
                writer.request(op)
            else:
                writer.update(op, statuses.get(op["external_id"], ""))
            if fail_after is not None and done >= fail_after:
                raise RuntimeError(f"injected failure after {done} operations (fail_after)")
        writer.flush()


def approve(engine: Engine, external_id: str, job_id: str) -> dict[str, Any]:
    """Attach a ``pending_approval`` customer to its org (the org's admin approved).

    Raises ``Refused`` when the customer is not waiting, or its org can no longer be attached;
    returns the customer's new facts (org id, partner role).
    """
    with transaction(engine) as conn:
        stmt = select(Customer).where(Customer.external_id == external_id)
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        found = conn.execute(stmt).first()
        if found is None:
            raise Refused(f"no customer {external_id!r} (see 'customers list')")
        c = found._mapping
        if c["status"] != "pending_approval":
            raise Refused(
                f"customer {external_id} is {c['status']}, not pending_approval: "
                "only a customer waiting for approval can be approved"
            )
        org = conn.execute(select(Org).where(Org.id == c["org_id"])).first()
        if org is None or org._mapping["trial"]:
            why = "no longer exists" if org is None else "is a trial org"
            raise Refused(f"customer {external_id} cannot be attached: org {c['org_id']} {why}")
        active = conn.execute(
            select(Pool.id).where(Pool.org_id == c["org_id"], Pool.status == "active").limit(1)
        ).first()
        role = partner_role(active is not None)
        subscription = conn.execute(
            select(Template.subscription).where(Template.provisioning_id == c["provisioning_id"])
        ).scalar()
        writer = _Writer(conn, job_id, default_catalog())
        attrs = {**dict(c), "subscription": subscription, "partner_role": role}
        writer.pools(c["org_id"], attrs)
        writer.bumped.add(c["org_id"])
        op = {"op": "attach_customer", "row": None, "email": c["admin_email"]}
        writer.audit(
            op,
            c["org_id"],
            {"status": "pending_approval"},
            {"status": "provisioned", "partner_role": role},
        )
        writer.flush()
        conn.execute(
            update(Customer)
            .where(Customer.external_id == external_id)
            .values(status="provisioned", partner_role=role, job_id=job_id, updated_at=utcnow())
        )
    return {"external_id": external_id, "org_id": c["org_id"], "partner_role": role}
