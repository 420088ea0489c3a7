"""Orders: the partner's purchases of licenses, and their assignment to orgs (seed 003).

Decisions:
- ``orders load`` takes YAML (``orders: [{id, license, quantity}]``) or CSV
  (``id,license,quantity``), checks every entry first (problems name the entry, key and value)
  and then adds new orders; reloading an unchanged order is a no-op, changing an unassigned one
  updates it, changing an assigned one is refused.
- ``assign`` gives all of an order's licenses to one org, once: the org's active pool for the
  license grows by the quantity (an unlimited pool stays unlimited), or a new active pool is
  created that remembers the order. The org's ``state_version`` grows, since its seats changed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, insert, select, update

from csvimport import catalog as catalog_mod
from csvimport.catalog import Catalog
from csvimport.model import Refused
from csvimport.store import snapcache
from csvimport.store.db import transaction
from csvimport.store.models import Order, Org, Pool, utcnow


class OrdersFileError(ValueError):
    """The orders file is wrong; ``problems`` names every entry, key and value."""

    def __init__(self, source: str, problems: list[str]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was loaded:\n{lines}")
        self.problems = problems


@dataclass(frozen=True)
class OrderInfo:
    id: str
    license: str
    quantity: int
    org: str | None
    assigned_at: str | None

    @property
    def status(self) -> str:
        return f"assigned to {self.org}" if self.org else "unassigned"


def load_orders(engine: Engine, path: str | Path, catalog: Catalog | None = None) -> int:
    """Add or update the orders of ``path``; return how many were added or changed."""
    path = Path(path)
    entries = parse_orders(_read(path), catalog or catalog_mod.default(), path.name)
    changed = 0
    with transaction(engine) as conn:
        existing = {r.id: r for r in conn.execute(select(Order).where(Order.id.in_(list(entries))))}
        problems = []
        for oid, entry in entries.items():
            old = existing.get(oid)
            if old is None:
                conn.execute(insert(Order), entry)
                changed += 1
            elif (old.license, old.quantity) != (entry["license"], entry["quantity"]):
                if old.org_id is not None:
                    problems.append(f"order {oid!r} is assigned to {old.org_id}: cannot change")
                    continue
                conn.execute(update(Order).where(Order.id == oid).values(entry))
                changed += 1
        if problems:
            raise OrdersFileError(path.name, problems)
    return changed


def _read(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".csv":
            return list(csv.DictReader(io.StringIO(text)))
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, csv.Error, yaml.YAMLError) as exc:
        raise OrdersFileError(path.name, [f"cannot be read: {exc}"]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
        raise OrdersFileError(path.name, ["orders: a list under the key 'orders' is required"])
    return list(data["orders"])


def parse_orders(raw: list[Any], catalog: Catalog, source: str) -> dict[str, dict[str, Any]]:
    """Checked orders by id, or ``OrdersFileError`` listing every problem."""
    known = [*catalog.packages, *(lic.id for lic in catalog.product_licenses)]
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for i, item in enumerate(raw):
        here = f"orders[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{here}: {item!r} must be a mapping")
            continue
        oid = str(item.get("id") or "").strip()
        lic = str(item.get("license") or "").strip()
        qty = _quantity(item.get("quantity"))
        if not oid:
            problems.append(f"{here}.id: is required")
        elif oid in out:
            problems.append(f"{here}.id: {oid!r} is listed twice")
        if lic not in known:
            problems.append(
                f"{here}.license: {lic!r} is not a package or product license "
                f"(known: {', '.join(known)})"
            )
        if qty is None:
            problems.append(f"{here}.quantity: {item.get('quantity')!r} must be a whole number > 0")
        out[oid] = {"id": oid, "license": lic, "quantity": qty}
    if problems:
        raise OrdersFileError(source, problems)
    return out


def _quantity(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value > 0 else None


def list_orders(engine: Engine) -> list[OrderInfo]:
    with transaction(engine, write=False) as conn:
        rows = conn.execute(select(Order).order_by(Order.id)).all()
    return [
        OrderInfo(
            r.id,
            r.license,
            r.quantity,
            r.org_id,
            r.assigned_at.isoformat() if r.assigned_at else None,
        )
        for r in rows
    ]


def assign_order(engine: Engine, order_id: str, org_id: str) -> int:
    """Give order ``order_id`` to org ``org_id``; return the id of the pool that grew.

    Raises ``Refused`` for an unknown order or org, or an order already assigned.
    """
    with transaction(engine) as conn:
        order = conn.execute(select(Order).where(Order.id == order_id).with_for_update()).first()
        if order is None:
            raise Refused(f"no order {order_id!r} (load it with 'orders load')")
        if order.org_id is not None:
            raise Refused(f"order {order_id} is already assigned to org {order.org_id}")
        version = conn.execute(
            select(Org.state_version).where(Org.id == org_id).with_for_update()
        ).scalar()
        if version is None:
            raise Refused(f"no org {org_id!r}")
        pool = conn.execute(
            select(Pool.id, Pool.quantity, Pool.order_id)
            .where(Pool.org_id == org_id, Pool.license == order.license, Pool.status == "active")
            .order_by(Pool.id)
            .limit(1)
        ).first()
        if pool is None:
            values = {"org_id": org_id, "license": order.license, "quantity": order.quantity}
            pool_id = conn.execute(
                insert(Pool).values(**values, status="active", order_id=order_id).returning(Pool.id)
            ).scalar_one()
        else:
            pool_id = pool.id
            quantity = None if pool.quantity is None else pool.quantity + order.quantity
            conn.execute(
                update(Pool)
                .where(Pool.id == pool.id)
                .values(quantity=quantity, order_id=pool.order_id or order_id)
            )
        conn.execute(
            update(Order).where(Order.id == order_id).values(org_id=org_id, assigned_at=utcnow())
        )
        snapcache.carry_forward(conn, org_id)  # only a pool changed
        conn.execute(update(Org).where(Org.id == org_id).values(state_version=version + 1))
        return int(pool_id)
