"""Carry out a ``Plan`` on the store: one transaction, bulk statements, an audit event per op.

Decisions:
- All or nothing: the plan is applied in one transaction that first checks the org's
  ``state_version`` against the plan's (with the org row locked: ``BEGIN IMMEDIATE`` on SQLite,
  ``FOR UPDATE`` on PostgreSQL), and bumps it by one on success. Any error rolls everything
  back, so a failed job leaves the org exactly as it was (SPEC 7, exit 5), and applying the
  same plan twice is refused as stale (exit 4).
- Never one round trip per row: operations are grouped by kind and written with executemany
  statements or chunked ``IN`` deletes, in an order that keeps the plan's meaning: deletes,
  claims (the free account leaves the consumer org), inserts, updates, license removals, then
  license assignments, then phone numbers, then the audit trail.
- A package is held on the user row: ``assign_license``/``remove_license`` of a package id set
  or clear ``users.package``; other licenses are rows of ``user_licenses``.
- Phone numbers: after the users are written, every number held by a touched user is released
  and each touched user's ``phone_number`` takes its number of the inventory, so swaps work.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, delete, select, update

from csvimport import catalog as catalog_mod
from csvimport.catalog import Catalog
from csvimport.model import OPERATION_KINDS, Plan, StaleOrBusy
from csvimport.store.bulk import among, executemany, insert_rows
from csvimport.store.db import APPLYING, transaction
from csvimport.store.models import (
    BOOL_FIELDS,
    TEXT_FIELDS,
    AuditEvent,
    Base,
    Number,
    Org,
    User,
    UserLicense,
)
from csvimport.store.values import normalize_number, parse_bool

CHUNK = 5_000
_USER_COLUMNS = (*TEXT_FIELDS, *BOOL_FIELDS, "role", "package")
_USERS = Base.metadata.tables[User.__tablename__]
_LICENSES = Base.metadata.tables[UserLicense.__tablename__]
_NUMBERS = Base.metadata.tables[Number.__tablename__]
_AUDIT = Base.metadata.tables[AuditEvent.__tablename__]


@dataclass(slots=True)
class _Op:
    seq: int
    op: str
    row: int | None
    email: str  # lowercase key
    display: str
    license: str | None
    data: dict[str, Any]


@dataclass
class _Audit:
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, op: _Op, before: Any = None, after: Any = None) -> None:
        self.events.append(
            {
                "seq": op.seq,
                "op": op.op,
                "row": op.row,
                "email": op.email,
                "license": op.license,
                "before": before,
                "after": after,
            }
        )


def apply_plan(
    engine: Engine,
    plan: Plan,
    job_id: str,
    *,
    fail_after: int | None = None,
    catalog: Catalog | None = None,
) -> int:
    """Apply ``plan`` to its org in one transaction; return the org's new ``state_version``.

    Raises ``StaleOrBusy`` when the org changed since the plan was made; any other error
    (including the test hook ``fail_after``: RuntimeError once that many operations were
    written) rolls the whole plan back and is re-raised.
    """
    if plan.org is None:
        raise ValueError("a plan without an org cannot be applied")
    ops = list(_operations(plan.operations))
    with transaction(engine) as conn, _page_cache(conn):
        current = _locked_version(conn, plan.org)
        if current != plan.state_version:
            raise StaleOrBusy(
                f"the org changed since the plan was made "
                f"(plan version {plan.state_version}, org now {current})"
            )
        writer = _Writer(conn, plan.org, catalog or catalog_mod.default(), fail_after)
        writer.run(ops)
        writer.write_audit(job_id)
        conn.execute(update(Org).where(Org.id == plan.org).values(state_version=current + 1))
    return current + 1


@contextmanager
def _page_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache of 128 MB instead of 2 MB while the plan is written: an apply
    into a 100k-user org writes users, licenses and audit rows all over their B-trees, and
    with the default cache each write read its pages back from the file (224k operations:
    17.0 -> 13.8 s). Set back before the connection returns to the pool, which keeps a
    connection's pragmas: a dry run reading its snapshot cache through it must not keep the
    blob's pages resident at its memory peak."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
    conn.exec_driver_sql(f"PRAGMA cache_size = {_APPLY_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {before}")


_APPLY_CACHE_KIB = -131072  # negative: KiB, not pages (SQLite's convention)


def _locked_version(conn: Connection, org: str) -> int:
    stmt = select(Org.state_version).where(Org.id == org)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    version = conn.execute(stmt).scalar()
    if version is None:
        raise StaleOrBusy(f"the org {org} no longer exists")
    return int(version)


def _operations(frame: pd.DataFrame) -> Iterator[_Op]:
    """The plan's rows as records, checked for known kinds before anything is written."""
    cols = [frame[c].tolist() for c in ("op", "row", "email", "license", "data")]
    for seq, (op, row, email, lic, data) in enumerate(zip(*cols, strict=True), start=1):
        if op not in OPERATION_KINDS:
            raise ValueError(f"plan line {seq}: unknown operation {op!r}")
        display = str(email).strip()
        license_id = lic if isinstance(lic, str) and lic else None
        yield _Op(
            seq, str(op), _row_number(row), display.lower(), display, license_id, _data(seq, data)
        )


def _row_number(row: Any) -> int | None:
    """A plan row number (None, NaN or NA: none); ``pd.isna`` per operation was a tenth of
    a 100k-operation apply."""
    if isinstance(row, int):
        return row
    return None if row is None or pd.isna(row) else int(row)


def _data(seq: int, data: Any) -> dict[str, Any]:
    if isinstance(data, str):  # a payload built as JSON text (``plan``)
        data = json.loads(data) if data else {}
    if isinstance(data, dict):
        return data
    if data is None or data is pd.NA or (isinstance(data, float) and pd.isna(data)):
        return {}
    raise ValueError(f"plan line {seq}: data must be a mapping, not {type(data).__name__}")


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Writer:
    """Writes one plan's operations with bulk statements, counting them for ``fail_after``."""

    def __init__(
        self, conn: Connection, org: str, catalog: Catalog, fail_after: int | None
    ) -> None:
        self.conn = conn
        self.org = org
        self.cat = catalog
        self.fail_after = fail_after
        self.written = 0
        self.audit = _Audit()
        self.phones: dict[str, str] = {}  # touched user -> its phone after the plan ("" none)
        self.claimed_from: dict[str, str] = {}  # claimed email -> the consumer org it left

    def progress(self, count: int) -> None:
        self.written += count
        if self.fail_after is not None and self.written >= self.fail_after:
            raise RuntimeError(f"injected failure after {self.written} operations (fail_after)")

    def run(self, ops: list[_Op]) -> None:
        by_kind: dict[str, list[_Op]] = defaultdict(list)
        for op in ops:
            by_kind[op.op].append(op)
        self.delete_users(by_kind["delete_user"])
        self.claim_users(by_kind["claim_user"])
        self.insert_users(by_kind["add_user"] + by_kind["claim_user"])
        self.modify_users(by_kind["modify_user"])
        self.change_licenses(by_kind["remove_license"], remove=True)
        self.change_licenses(by_kind["assign_license"], remove=False)
        self.update_numbers()

    # -- users -----------------------------------------------------------------------------

    def delete_users(self, ops: list[_Op]) -> None:
        for chunk in _chunks(ops):
            emails = [op.email for op in chunk]
            before = self._user_images(emails)
            self._delete_emails(self.org, emails)
            for op in chunk:
                self.audit.add(op, before=before.get(op.email))
                self.phones[op.email] = ""
            self.progress(len(chunk))

    def _user_images(self, emails: list[str]) -> dict[str, dict[str, Any]]:
        """The deleted users as they were, with their licenses, for the audit trail."""
        rows = self.conn.execute(
            select(_USERS).where(
                _USERS.c.org_id == self.org, among(_USERS.c.email, emails, self.conn.dialect)
            )
        )
        images = {
            r.email: {k: v for k, v in r._mapping.items() if v is not None and k != "org_id"}
            for r in rows
        }
        lics = self.conn.execute(
            select(_LICENSES.c.email, _LICENSES.c.license).where(
                _LICENSES.c.org_id == self.org, among(_LICENSES.c.email, emails, self.conn.dialect)
            )
        )
        for email, lic in lics:
            images[email].setdefault("licenses", []).append(lic)
        return images

    def _delete_emails(self, org: str, emails: list[str]) -> None:
        for table in (_LICENSES, _USERS):
            self.conn.execute(
                delete(table).where(
                    table.c.org_id == org, among(table.c.email, emails, self.conn.dialect)
                )
            )

    def claim_users(self, ops: list[_Op]) -> None:
        """Free accounts leave the consumer org(s); ``insert_users`` adds them here."""
        for chunk in _chunks(ops):
            emails = [op.email for op in chunk]
            stmt = (
                select(_USERS.c.org_id, _USERS.c.email)
                .join(Org, Org.id == _USERS.c.org_id)
                .where(Org.kind == "consumer", among(_USERS.c.email, emails, self.conn.dialect))
            )
            holders: dict[str, list[str]] = defaultdict(list)
            for org, email in self.conn.execute(stmt):
                holders[org].append(email)
            for org, held in holders.items():
                self._delete_emails(org, held)
                self.conn.execute(
                    update(Org).where(Org.id == org).values(state_version=Org.state_version + 1)
                )
            for org, held in holders.items():
                self.claimed_from.update(dict.fromkeys(held, org))

    def insert_users(self, ops: list[_Op]) -> None:
        for chunk in _chunks(ops):
            rows = [self._new_user(op) for op in chunk]
            insert_rows(self.conn, _USERS, rows)
            for op, row in zip(chunk, rows, strict=True):
                before = {"org": self.claimed_from.get(op.email)} if op.op == "claim_user" else None
                self.audit.add(op, before=before, after=dict(op.data.get("attributes") or {}))
                self.phones[op.email] = row["phone_number"] or ""
            self.progress(len(chunk))

    def _new_user(self, op: _Op) -> dict[str, Any]:
        attrs = op.data.get("attributes") or {}
        row: dict[str, Any] = {"org_id": self.org, "email": op.email}
        row["email_display"] = str(attrs.get("email") or op.display)
        for name in _USER_COLUMNS:
            row[name] = self._value(name, attrs.get(name))
        row["role"] = row["role"] or "user"
        extra = {
            k: str(v)
            for k, v in attrs.items()
            if k in self.cat.fields
            and k not in _USER_COLUMNS
            and k != "email"
            and v not in ("", None)
        }
        row["extra"] = extra or None
        return row

    def _value(self, name: str, value: Any) -> Any:
        """A plan value (text) as the column keeps it: booleans parsed, "" as NULL."""
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if name in BOOL_FIELDS:
            parsed = parse_bool(value, self.cat)
            if parsed is None:
                raise ValueError(f"{name}: {value!r} is not a boolean")
            return parsed
        return str(value)

    def modify_users(self, ops: list[_Op]) -> None:
        groups: dict[tuple[str, ...], list[_Op]] = defaultdict(list)
        extras: list[_Op] = []
        for op in ops:
            changes = op.data.get("changes") or {}
            columns = tuple(sorted(k for k in changes if k in _USER_COLUMNS))
            if columns:
                groups[columns].append(op)
            if any(k not in _USER_COLUMNS for k in changes):
                extras.append(op)
        for columns, members in groups.items():
            self._update_columns(columns, members)
        self._update_extras(extras)
        for op in ops:
            changes = op.data.get("changes") or {}
            before = {k: c.get("from") for k, c in changes.items()}
            self.audit.add(op, before=before, after={k: c.get("to") for k, c in changes.items()})
            if "phone_number" in changes:
                self.phones[op.email] = str(changes["phone_number"].get("to") or "")
        self.progress(len(ops))

    def _update_columns(self, columns: tuple[str, ...], ops: list[_Op]) -> None:
        stmt = (
            update(_USERS)
            .where(_USERS.c.org_id == bindparam("k_org"), _USERS.c.email == bindparam("k_email"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        for chunk in _chunks(ops):
            params = []
            for op in chunk:
                changes = op.data["changes"]
                p = {f"v_{c}": self._value(c, changes[c].get("to")) for c in columns}
                if "v_role" in p and p["v_role"] is None:  # a role cleared is the default
                    p["v_role"] = "user"
                params.append({"k_org": self.org, "k_email": op.email, **p})
            executemany(self.conn, stmt, params)

    def _update_extras(self, ops: list[_Op]) -> None:
        """Fields without a column of their own: read, merge and write ``users.extra``."""
        for chunk in _chunks(ops):
            emails = [op.email for op in chunk]
            stmt = select(_USERS.c.email, _USERS.c.extra).where(
                _USERS.c.org_id == self.org, among(_USERS.c.email, emails, self.conn.dialect)
            )
            current = {e: dict(x or {}) for e, x in self.conn.execute(stmt)}
            params = []
            for op in chunk:
                extra = current.get(op.email, {})
                for key, change in op.data["changes"].items():
                    if key not in _USER_COLUMNS and key in self.cat.fields and key != "email":
                        extra[key] = str(change.get("to") or "")
                params.append({"k_org": self.org, "k_email": op.email, "v_extra": extra or None})
            executemany(
                self.conn,
                update(_USERS)
                .where(
                    _USERS.c.org_id == bindparam("k_org"), _USERS.c.email == bindparam("k_email")
                )
                .values(extra=bindparam("v_extra")),
                params,
            )

    # -- licenses --------------------------------------------------------------------------

    def change_licenses(self, ops: list[_Op], *, remove: bool) -> None:
        packages = [op for op in ops if op.license in self.cat.packages]
        others = [op for op in ops if op.license not in self.cat.packages]
        for chunk in _chunks(packages):
            self._set_packages(chunk, remove=remove)
        for chunk in _chunks(others):
            params = [
                {"org_id": self.org, "email": op.email, "license": op.license} for op in chunk
            ]
            if remove:
                executemany(
                    self.conn,
                    delete(_LICENSES).where(
                        and_(
                            _LICENSES.c.org_id == bindparam("org_id"),
                            _LICENSES.c.email == bindparam("email"),
                            _LICENSES.c.license == bindparam("license"),
                        )
                    ),
                    params,
                )
            else:
                insert_rows(self.conn, _LICENSES, params)
        # One audit document per license, shared by its events: they are written as one JSON
        # text each (``bulk``), not serialized once per operation. Never changed once made.
        docs: dict[str | None, dict[str, Any]] = {}
        for op in ops:
            lic = docs.setdefault(op.license, {"license": op.license})
            self.audit.add(op, before=lic if remove else None, after=None if remove else lic)
        self.progress(len(ops))

    def _set_packages(self, ops: list[_Op], *, remove: bool) -> None:
        where = [_USERS.c.org_id == bindparam("k_org"), _USERS.c.email == bindparam("k_email")]
        if remove:
            where.append(_USERS.c.package == bindparam("k_package"))
        stmt = update(_USERS).where(*where).values(package=bindparam("v_package"))
        params = [
            {
                "k_org": self.org,
                "k_email": op.email,
                "k_package": op.license,
                "v_package": None if remove else op.license,
            }
            for op in ops
        ]
        if not remove:
            for p in params:
                del p["k_package"]
        executemany(self.conn, stmt, params)

    # -- numbers and audit -----------------------------------------------------------------

    def update_numbers(self) -> None:
        """Touched users release their numbers, then take the one their phone names."""
        touched = list(self.phones)
        for chunk in _chunks(touched):
            self.conn.execute(
                update(_NUMBERS)
                .where(
                    _NUMBERS.c.org_id == self.org,
                    among(_NUMBERS.c.email, chunk, self.conn.dialect),
                )
                .values(email=None)
            )
        takes = [
            {"k_org": self.org, "k_number": normalize_number(p), "v_email": e}
            for e, p in self.phones.items()
            if p
        ]
        # Updates by primary key only: a condition on ``email`` lets PostgreSQL's generic plan
        # pick the (org, email) index and scan every free number per row (1k ops/s).
        stmt = (
            update(_NUMBERS)
            .where(
                _NUMBERS.c.org_id == bindparam("k_org"),
                _NUMBERS.c.number == bindparam("k_number"),
            )
            .values(email=bindparam("v_email"))
        )
        for chunk in _chunks(takes):
            held = set(
                self.conn.execute(
                    select(_NUMBERS.c.number).where(
                        _NUMBERS.c.org_id == self.org,
                        among(_NUMBERS.c.number, [t["k_number"] for t in chunk], self.conn.dialect),
                        _NUMBERS.c.email.is_not(None),
                    )
                ).scalars()
            )
            free = [t for t in chunk if t["k_number"] not in held]  # never take a held number
            if free:
                executemany(self.conn, stmt, free)

    def write_audit(self, job_id: str) -> None:
        events = sorted(self.audit.events, key=lambda e: int(e["seq"]))
        for chunk in _chunks(events):
            insert_rows(self.conn, _AUDIT, chunk, job_id=job_id, org_id=self.org)
        self.conn.info[APPLYING] = True
