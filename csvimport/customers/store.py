"""What the customers engine reads from the store, in a few bulk queries.

Planning never touches the database (``plan`` is pure), so a job first reads a
``CustomerState``: the templates, the customers the file names, and the orgs it refers to, with
just the facts seed 004's rules need (user count, verified and claimed domains, whether any
license pool is active, trial). Lookups by the file's ids go in chunked ``IN`` lists, never one
query per row.

``status_of_org`` is what the users engine asks before importing into an org (SPEC 11:
``org_not_ready``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from csvimport.customers.templates import KEYS as TEMPLATE_KEYS
from csvimport.store.db import transaction
from csvimport.store.models import Customer, Org, Pool, Template, User

_CHUNK = 5_000
CUSTOMER_COLUMNS = (
    "external_id",
    "company_name",
    "admin_email",
    "org_id",
    "provisioning_id",
    "status",
    "partner_role",
    "packages",
    "limits",
    "address",
    "country",
    "language",
    "time_zone",
    "location_name",
)
_CUSTOMERS, _USERS, _ORGS = (m.__table__ for m in (Customer, User, Org))
ORG_COLUMNS = ("kind", "trial", "users", "verified", "claimed", "licensed", "state_version")


class CustomerNotFound(LookupError):
    """No customer with that External Customer ID is stored."""


@dataclass
class CustomerState:
    """The store as a customers plan needs it.

    - ``templates``: index provisioning id; columns ``TEMPLATE_KEYS`` but the id.
    - ``customers``: index external id; columns ``CUSTOMER_COLUMNS`` (JSON ones as Python
      objects), the customers the file names.
    - ``managed``: org id -> external id of the customer that holds it (for the orgs asked).
    - ``orgs``: index org id; ``ORG_COLUMNS`` for the orgs asked that exist.
    - ``emails``: lowercase emails of asked addresses that are users of some org.
    """

    templates: pd.DataFrame
    customers: pd.DataFrame
    managed: dict[str, str]
    orgs: pd.DataFrame
    emails: frozenset[str]


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted({v for v in values if v})
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _present(conn: Connection, column: Any, wanted: Iterable[str]) -> set[str]:
    """The values of ``wanted`` that ``column`` holds.

    The whole column when it is not much longer than ``wanted`` (one scan beats compiling
    thousands of ``IN`` parameters), else chunked ``IN`` lists.
    """
    asked = {v for v in wanted if v}
    if not asked:
        return set()
    held = conn.execute(select(func.count()).select_from(column.table)).scalar_one()
    if held <= 4 * len(asked):
        return {str(v) for v in conn.execute(select(column).distinct()).scalars()} & asked
    found: set[str] = set()
    for chunk in _chunks(asked):
        found.update(
            str(v) for v in conn.execute(select(column).where(column.in_(chunk))).scalars()
        )
    return found


def status_of_org(db: Engine, org_id: str) -> str | None:
    """The status of the customer that provisions ``org_id``; None when no customer does."""
    with transaction(db, write=False) as conn:
        found = conn.execute(select(Customer.status).where(Customer.org_id == org_id)).scalar()
    return None if found is None else str(found)


def load_templates(conn: Connection) -> pd.DataFrame:
    rows = [r._mapping for r in conn.execute(select(Template))]
    frame = pd.DataFrame.from_records(
        [{k: r[k] for k in TEMPLATE_KEYS} for r in rows], columns=list(TEMPLATE_KEYS)
    )
    frame = frame.astype({"name": "str", "provisioning_id": "str"})
    return frame.set_index("provisioning_id")


def load_state(
    db: Engine, external_ids: Iterable[str], org_ids: Iterable[str], emails: Iterable[str]
) -> CustomerState:
    """One read transaction: templates, the named customers, orgs and emails."""
    with transaction(db, write=False) as conn:
        templates = load_templates(conn)
        customers = _customers(conn, _present(conn, _CUSTOMERS.c.external_id, external_ids))
        asked = set(org_ids) | set(customers["org_id"])
        managed: dict[str, str] = {}
        for chunk in _chunks(_present(conn, _CUSTOMERS.c.org_id, asked)):
            stmt = select(Customer.org_id, Customer.external_id).where(Customer.org_id.in_(chunk))
            managed.update({str(o): str(e) for o, e in conn.execute(stmt)})
        taken = _present(conn, _USERS.c.email, (e.lower() for e in emails))
        orgs = _orgs(conn, _present(conn, _ORGS.c.id, asked))
        return CustomerState(templates, customers, managed, orgs, frozenset(taken))


def _customers(conn: Connection, external_ids: Iterable[str]) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    for chunk in _chunks(external_ids):
        stmt = select(Customer).where(Customer.external_id.in_(chunk))
        records += [{k: r._mapping[k] for k in CUSTOMER_COLUMNS} for r in conn.execute(stmt)]
    frame = pd.DataFrame.from_records(records, columns=list(CUSTOMER_COLUMNS))
    frame["packages"] = frame["packages"].map(tuple)
    return frame.set_index("external_id")


def _orgs(conn: Connection, org_ids: set[str]) -> pd.DataFrame:
    """Seed 004's facts about each asked org that exists."""
    records: list[dict[str, Any]] = []
    for chunk in _chunks(org_ids):
        users = dict(
            conn.execute(
                select(User.org_id, func.count())
                .where(User.org_id.in_(chunk))
                .group_by(User.org_id)
            ).all()
        )
        licensed = set(
            conn.execute(
                select(Pool.org_id)
                .where(Pool.org_id.in_(chunk), Pool.status == "active")
                .distinct()
            ).scalars()
        )
        for org in conn.execute(select(Org).where(Org.id.in_(chunk))):
            o = org._mapping
            records.append(
                {
                    "id": o["id"],
                    "kind": o["kind"],
                    "trial": bool(o["trial"]),
                    "users": int(users.get(o["id"], 0)),
                    "verified": bool(o["verified_domains"]),
                    "claimed": bool(o["claimed_domains"]),
                    "licensed": o["id"] in licensed,
                    "state_version": int(o["state_version"]),
                }
            )
    return pd.DataFrame.from_records(records, columns=["id", *ORG_COLUMNS]).set_index("id")


# -- listing -------------------------------------------------------------------------------


VIEW_KEYS = (
    "external_id",
    "company_name",
    "status",
    "org_id",
    "provisioning_id",
    "packages",
    "partner_role",
)


def customer_view(m: Any) -> dict[str, Any]:
    """A customer as ``customers list/show --format json`` prints it (SPEC 11)."""
    return {
        "external_id": m["external_id"],
        "company_name": m["company_name"],
        "status": m["status"],
        "org_id": m["org_id"] if m["status"] == "provisioned" else None,
        "provisioning_id": m["provisioning_id"],
        "packages": list(m["packages"] or []),
        "partner_role": m["partner_role"],
    }


def list_customers(db: Engine) -> list[dict[str, Any]]:
    """Every customer, by External Customer ID."""
    with transaction(db, write=False) as conn:
        rows = conn.execute(select(Customer).order_by(Customer.external_id))
        return [customer_view(r._mapping) for r in rows]


def get_customer(db: Engine, external_id: str) -> dict[str, Any]:
    """One customer's view plus its details (admin, limits, address, waiting org)."""
    with transaction(db, write=False) as conn:
        row = conn.execute(select(Customer).where(Customer.external_id == external_id)).first()
    if row is None:
        raise CustomerNotFound(f"no customer {external_id!r} (see 'customers list')")
    m = row._mapping
    return {
        **customer_view(m),
        "admin_email": m["admin_email"],
        "limits": dict(m["limits"] or {}),
        "address": dict(m["address"] or {}),
        "target_org_id": m["org_id"],
    }
