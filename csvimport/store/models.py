"""The tables of an org's state, its jobs and its audit trail (SQLAlchemy 2, typed).

Decisions:
- Org ids are the partner's external ids (strings), so files, folders and rows share one key.
- Users are keyed by ``(org_id, email)`` with ``email`` stored lowercase: emails compare
  case-insensitively everywhere (SPEC 2), and a unique key makes "one user per email per org"
  the database's job. ``email_display`` keeps the spelling the admin gave.
- A user's package lives on the user row (a user holds at most one); ``user_licenses`` holds
  the basic and product licenses. Seats used are counted, never stored, so they cannot drift.
- Catalogue fields without a column of their own go to ``users.extra`` (JSON), so adding a
  column to ``schemas/`` needs no migration.
- ``orgs.state_version`` grows by one with every committed change of the org: a plan records
  the version it was made against and apply refuses it when the org moved on (SPEC 7, exit 4).
- ``snapshot_cache`` holds derived data, not org state: an org's users, licenses and numbers as
  one Arrow blob, valid only while ``orgs.state_version`` equals its ``state_version``
  (``store/snapcache.py``). It is an added table that nothing else refers to, so it needs no
  schema version of its own: ``create_all`` adds it to an existing database on first use, an
  older csvimport simply ignores it, and deleting its rows is always safe.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The user columns that hold catalogue fields (SPEC 9), besides the key ``email``.
TEXT_FIELDS = (
    "first_name",
    "last_name",
    "display_name",
    "extension",
    "phone_number",
    "caller_id_number",
    "caller_id_first_name",
    "caller_id_last_name",
    "location",
    "title",
    "department",
    "manager",
    "preferred_site",
)
BOOL_FIELDS = ("jabber_calling", "jabber_teams")
USER_FIELDS = (*TEXT_FIELDS[:3], "email", *TEXT_FIELDS[3:12], *BOOL_FIELDS, TEXT_FIELDS[12])

ORG_KINDS = ("customer", "consumer")
POOL_STATUSES = ("active", "suspended", "cancelled")
ROLES = ("user", "full_admin")
JOB_STATUSES = (
    "CREATED",
    "RUNNING",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "REJECTED",
    "DUPLICATE",  # a drop-folder file whose content was already applied to the org (SPEC 10)
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    """Key/value facts about the database itself, e.g. ``schema_version``."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="customer")
    package: Mapped[str | None] = mapped_column(String(100))
    directory_sync: Mapped[bool] = mapped_column(Boolean, default=False)
    integrations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    default_licenses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    verified_domains: Mapped[list[Any]] = mapped_column(JSON, default=list)
    claimed_domains: Mapped[list[Any]] = mapped_column(JSON, default=list)
    trial: Mapped[bool] = mapped_column(Boolean, default=False)
    state_version: Mapped[int] = mapped_column(Integer, default=0)


# The tables of an org's users are stored in key order (org first) on SQLite: ``WITHOUT
# ROWID`` keeps each row in its primary-key B-tree, so reading one org is a range scan instead
# of an index walk plus a table lookup per row (1M users: 3.4 s -> 1.3 s). PostgreSQL ignores it.
CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}
CLUSTERED_TABLES = ("users", "user_licenses", "numbers")


def _org_fk() -> Any:
    return ForeignKey("orgs.id", ondelete="CASCADE")


class Location(Base):
    __tablename__ = "locations"
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class Site(Base):
    __tablename__ = "sites"
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class Number(Base):
    """A phone number of the org's inventory (E.164); ``email`` is the user holding it."""

    __tablename__ = "numbers"
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    location: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    __table_args__ = (Index("ix_numbers_org_email", "org_id", "email"), CLUSTERED)


class Pool(Base):
    """Seats of one package or product license; ``quantity`` None means unlimited."""

    __tablename__ = "pools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), index=True)
    license: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    order_id: Mapped[str | None] = mapped_column(String(200))
    subscription: Mapped[str | None] = mapped_column(String(200))


class User(Base):
    __tablename__ = "users"
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)  # lowercase key
    email_display: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    extension: Mapped[str | None] = mapped_column(String(20))
    phone_number: Mapped[str | None] = mapped_column(String(40))
    caller_id_number: Mapped[str | None] = mapped_column(String(40))
    caller_id_first_name: Mapped[str | None] = mapped_column(Text)
    caller_id_last_name: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    manager: Mapped[str | None] = mapped_column(Text)
    jabber_calling: Mapped[bool | None] = mapped_column(Boolean)
    jabber_teams: Mapped[bool | None] = mapped_column(Boolean)
    preferred_site: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), default="user")
    package: Mapped[str | None] = mapped_column(String(100))
    # none_as_null: no extra fields is SQL NULL, not JSON 'null', so snapshots skip the rows.
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The email alone is looked up across orgs (claims, user_in_other_org).
    __table_args__ = (Index("ix_users_email", "email"), CLUSTERED)


class UserLicense(Base):
    __tablename__ = "user_licenses"
    org_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    license: Mapped[str] = mapped_column(String(100), primary_key=True)
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "email"], ["users.org_id", "users.email"], ondelete="CASCADE"
        ),
        CLUSTERED,
    )


class Order(Base):
    """A partner's purchase (seed 003); ``org_id`` is set once it is assigned."""

    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    license: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    org_id: Mapped[str | None] = mapped_column(String(200))
    assigned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="users")
    source: Mapped[str] = mapped_column(String(16), default="cli")
    folder: Mapped[str | None] = mapped_column(Text)
    file: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="CREATED")
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """One applied operation: what it changed, before and after (SPEC 1: exact changes)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    org_id: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(32))
    row: Mapped[int | None] = mapped_column(Integer)
    email: Mapped[str | None] = mapped_column(String(320))
    license: Mapped[str | None] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    __table_args__ = (Index("ix_audit_org_email", "org_id", "email"),)


class OrgLock(Base):
    """At most one running job per org: the row exists while a job holds the org."""

    __tablename__ = "org_locks"
    org_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BatchFile(Base):
    """A drop-folder file claimed by a ``watch`` worker: one row per batch job (SPEC 10).

    ``active_key`` identifies the file in its folder (org, folder, name) while a job is in
    flight and is NULL once the file reached done/ or failed/: its unique constraint is the
    claim (two workers inserting the same key: one wins), and clearing it lets a later file of
    the same name be claimed again. ``worker`` and ``heartbeat`` tell the others whether the
    claimer is alive.
    """

    __tablename__ = "batch_files"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    org: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    worker: Mapped[str] = mapped_column(String(200))
    heartbeat: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))
    dest: Mapped[str | None] = mapped_column(Text)


class SnapshotCache(Base):
    """An org's snapshot frames as of ``state_version`` (``store/snapcache.py``): one row per
    org, replaced when the org moved on; ``format`` names the blob's layout.

    No foreign key to ``orgs``: orgs are never deleted, and on PostgreSQL a key check would
    take a share lock on the org row, making a best-effort cache write wait for an apply.
    """

    __tablename__ = "snapshot_cache"
    org_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state_version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# Tables that hold one org's state, in an order safe for deleting (children first).
ORG_STATE_TABLES = ("user_licenses", "users", "numbers", "pools", "sites", "locations")


# -- customers (SPEC 11) -------------------------------------------------------------------
# Appended for the customers engine (``csvimport.customers``); none of the tables above refers
# to these, so an org loaded by file works exactly as before.

CUSTOMER_STATUSES = (
    "provisioning",
    "provisioned",
    "provisioned_with_errors",
    "pending_approval",
    "error",
)
PARTNER_ROLES = ("provisioning_admin", "full_admin")


class Template(Base):
    """An onboarding template (seed 002); customers name it by provisioning id or name."""

    __tablename__ = "templates"
    provisioning_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str | None] = mapped_column(String(32))
    subscription: Mapped[str | None] = mapped_column(String(200))
    authentication: Mapped[str] = mapped_column(String(16), default="webex")
    email_invitations: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_admin_invites_on_attach: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str | None] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Customer(Base):
    """A customer of the partner, keyed by its External Customer ID.

    ``org_id`` is the org it provisions: the created org, the attached one, or the org waiting
    for approval (unique: an org is managed as one customer). ``partner_role`` is the partner's
    role in that org once provisioned. ``packages`` is the complete list of package ids;
    ``limits`` maps a package id to its quantity (None: unlimited); ``address`` holds the
    headquarters' address cells by field id.
    """

    __tablename__ = "customers"
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    company_name: Mapped[str] = mapped_column(Text)
    admin_email: Mapped[str] = mapped_column(String(320))
    org_id: Mapped[str] = mapped_column(String(200), unique=True)
    provisioning_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    partner_role: Mapped[str | None] = mapped_column(String(32))
    packages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str | None] = mapped_column(String(32))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    location_name: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OrgProfile(Base):
    """Settings a created org takes from its template: authentication, language, country.

    Only orgs created from a template have one; attaching never writes it, so an existing
    org keeps its own authentication (seed 004).
    """

    __tablename__ = "org_profiles"
    org_id: Mapped[str] = mapped_column(String(200), _org_fk(), primary_key=True)
    authentication: Mapped[str] = mapped_column(String(16), default="webex")
    language: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    email_invitations: Mapped[bool] = mapped_column(Boolean, default=True)
