"""``org load``: an org description file (SPEC 9) into the store.

Decisions:
- Check everything first and load nothing unless all of it is right: a partner fixing a file
  wants every problem at once, each naming its key path and value
  (``users[3].package: 'webex_sweet' is not a package (known: ...)``).
- Loading replaces the org's whole state (settings, locations, sites, numbers, pools, users and
  their licenses) in one transaction and bumps ``state_version``, so plans made against the old
  state are refused. Orders already assigned to the org stay assigned.
- Phone numbers are kept in E.164 without spacing; emails are keyed lowercase and displayed as
  given; a pool without a quantity is unlimited; absent ``default_licenses`` means the
  catalogue's defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, delete, insert, select, update

from csvimport import catalog as catalog_mod
from csvimport.catalog import Catalog
from csvimport.store.db import transaction
from csvimport.store.models import (
    BOOL_FIELDS,
    ORG_KINDS,
    ORG_STATE_TABLES,
    POOL_STATUSES,
    ROLES,
    TEXT_FIELDS,
    Base,
    Location,
    Number,
    Org,
    Pool,
    Site,
    User,
    UserLicense,
)
from csvimport.store.values import is_e164, is_email, is_extension, normalize_number, parse_bool

_ORG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TOP_KEYS = ("org", "locations", "sites", "numbers", "pools", "users")
_ORG_KEYS = (
    "id",
    "name",
    "kind",
    "package",
    "directory_sync",
    "integrations",
    "default_licenses",
    "verified_domains",
    "claimed_domains",
    "trial",
)


class OrgFileError(ValueError):
    """The org file is wrong; ``problems`` lists every finding, each naming key and value."""

    def __init__(self, source: str, problems: list[str]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was loaded:\n{lines}")
        self.problems = problems


@dataclass
class OrgData:
    """A checked org file, ready to store."""

    org: dict[str, Any]
    locations: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[dict[str, Any]] = field(default_factory=list)


def load_org_file(engine: Engine, path: str | Path, catalog: Catalog | None = None) -> str:
    """Create or replace the org described by ``path``; return its id.

    Raises ``OrgFileError`` (all problems, nothing loaded) when the file is wrong.
    """
    path = Path(path)
    data = parse_org(read_org_file(path), catalog or catalog_mod.default(), source=path.name)
    store_org(engine, data)
    return str(data.org["id"])


def read_org_file(path: Path) -> Any:
    """The parsed YAML or JSON document of ``path``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise OrgFileError(path.name, [f"cannot be read: {exc}"]) from exc


def parse_org(raw: Any, catalog: Catalog, source: str = "org file") -> OrgData:
    """Check a parsed org document; return it normalised or raise ``OrgFileError``."""
    checker = _Checker(catalog)
    data = checker.document(raw)
    if checker.problems:
        raise OrgFileError(source, checker.problems)
    return data


class _Checker:
    """Collects every problem of one org document instead of stopping at the first."""

    def __init__(self, catalog: Catalog) -> None:
        self.cat = catalog
        self.problems: list[str] = []

    def bad(self, where: str, value: Any, why: str) -> None:
        self.problems.append(f"{where}: {value!r} {why}")

    # -- structure -------------------------------------------------------------------------

    def mapping(self, where: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.bad(where, value, "must be a mapping")
            return {}
        for key in value:
            if key not in known:
                self.bad(f"{where}.{key}" if where else str(key), key, "is not a known key")
        return value

    def items(self, where: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(where, value, "must be a list")
            return []
        return value

    def text(self, where: str, value: Any, *, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                self.problems.append(f"{where}: is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.bad(where, value, "must be text")
            return None
        return str(value).strip()

    def flag(self, where: str, value: Any, default: bool | None = False) -> bool | None:
        if value is None:
            return default
        parsed = parse_bool(value, self.cat)
        if parsed is None:
            self.bad(where, value, "is not a boolean (true or false)")
        return parsed

    def strings(self, where: str, value: Any) -> list[str]:
        out = []
        for i, item in enumerate(self.items(where, value)):
            text = self.text(f"{where}[{i}]", item, required=True)
            if text is not None:
                out.append(text)
        return out

    def one_of(self, where: str, value: str | None, known: Any, what: str) -> str | None:
        if value is not None and value not in known:
            self.bad(where, value, f"is not {what} (known: {', '.join(known)})")
            return None
        return value

    # -- sections --------------------------------------------------------------------------

    def document(self, raw: Any) -> OrgData:
        top = self.mapping("", raw, _TOP_KEYS)
        org = self.org(top.get("org"))
        data = OrgData(org=org)
        data.locations = self.names("locations", top.get("locations"))
        data.sites = self.names("sites", top.get("sites"))
        data.numbers = self.numbers(top.get("numbers"), set(data.locations))
        data.pools = self.pools(top.get("pools"))
        data.users, data.licenses = self.users(top.get("users"), data)
        return data

    def org(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            self.problems.append("org: is required")
            return {}
        m = self.mapping("org", raw, _ORG_KEYS)
        oid = self.text("org.id", m.get("id"), required=True)
        if oid is not None and not _ORG_ID.match(oid):
            self.bad("org.id", oid, "must be letters, digits, '.', '_' or '-'")
        kind = self.one_of("org.kind", self.text("org.kind", m.get("kind")), ORG_KINDS, "a kind")
        package = self.text("org.package", m.get("package"))
        defaults = m.get("default_licenses")
        return {
            "id": oid,
            "name": self.text("org.name", m.get("name")) or oid or "",
            "kind": kind or "customer",
            "package": self.one_of("org.package", package, self.cat.packages, "a package"),
            "directory_sync": bool(self.flag("org.directory_sync", m.get("directory_sync"))),
            "integrations": self.strings("org.integrations", m.get("integrations")),
            "default_licenses": self.catalog_ids(
                "org.default_licenses", defaults, self.cat.licenses, "a license"
            )
            if defaults is not None
            else list(self.cat.default_licenses),
            "verified_domains": [
                d.lower() for d in self.strings("org.verified_domains", m.get("verified_domains"))
            ],
            "claimed_domains": [
                d.lower() for d in self.strings("org.claimed_domains", m.get("claimed_domains"))
            ],
            "trial": bool(self.flag("org.trial", m.get("trial"))),
            "state_version": 0,
        }

    def catalog_ids(self, where: str, value: Any, known: Any, what: str) -> list[str]:
        out = []
        for i, item in enumerate(self.strings(where, value)):
            if self.one_of(f"{where}[{i}]", item, known, what) is not None:
                out.append(item)
        return out

    def names(self, where: str, raw: Any) -> list[str]:
        out: list[str] = []
        for i, item in enumerate(self.items(where, raw)):
            here = f"{where}[{i}]"
            value = (
                self.mapping(here, item, ("name",)).get("name") if isinstance(item, dict) else item
            )
            name = self.text(
                f"{here}.name" if isinstance(item, dict) else here, value, required=True
            )
            if name is None:
                continue
            if name in out:
                self.bad(here, name, "is listed twice")
            else:
                out.append(name)
        return out

    def numbers(self, raw: Any, locations: set[str]) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(self.items("numbers", raw)):
            here = f"numbers[{i}]"
            m = self.mapping(here, item, ("number", "location"))
            number = self.text(f"{here}.number", m.get("number"), required=True)
            location = self.text(f"{here}.location", m.get("location"))
            if location is not None and location not in locations:
                self.bad(f"{here}.location", location, "is not a location of the org")
            if number is None:
                continue
            if not is_e164(number):
                self.bad(f"{here}.number", number, "is not an E.164 number (+ and 8-15 digits)")
                continue
            key = normalize_number(number)
            if key in out:
                self.bad(f"{here}.number", number, "is listed twice")
            out[key] = {"number": key, "location": location, "email": None}
        return list(out.values())

    def pools(self, raw: Any) -> list[dict[str, Any]]:
        out = []
        known = [*self.cat.packages, *(lic.id for lic in self.cat.product_licenses)]
        for i, item in enumerate(self.items("pools", raw)):
            here = f"pools[{i}]"
            m = self.mapping(here, item, ("license", "quantity", "status", "order", "subscription"))
            lic = self.text(f"{here}.license", m.get("license"), required=True)
            lic = self.one_of(f"{here}.license", lic, known, "a package or product license")
            given = self.text(f"{here}.status", m.get("status")) or "active"
            status = self.one_of(f"{here}.status", given, POOL_STATUSES, "a pool status")
            quantity = m.get("quantity")
            if quantity is not None and (
                isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0
            ):
                self.bad(f"{here}.quantity", quantity, "must be a whole number >= 0 (or absent)")
            out.append(
                {
                    "license": lic,
                    "quantity": quantity,
                    "status": status,
                    "order_id": self.text(f"{here}.order", m.get("order")),
                    "subscription": self.text(f"{here}.subscription", m.get("subscription")),
                }
            )
        return out

    def users(self, raw: Any, data: OrgData) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        users: dict[str, dict[str, Any]] = {}
        licenses: list[dict[str, Any]] = []
        phones: dict[str, tuple[int, str]] = {}
        for i, item in enumerate(self.items("users", raw)):
            user, lics = self.user(f"users[{i}]", item, data)
            if user is None:
                continue
            key = user["email"]
            if key in users:
                self.bad(f"users[{i}].email", user["email_display"], "is listed twice")
                continue
            phone = user.get("phone_number")
            if phone:
                if phone in phones:
                    self.bad(f"users[{i}].phone_number", phone, f"is also {phones[phone][1]}'s")
                phones[phone] = (i, key)
            users[key] = user
            licenses += [{"org_id": None, "email": key, "license": lic} for lic in lics]
        self.assign_numbers(data, phones)
        return list(users.values()), licenses

    def assign_numbers(self, data: OrgData, phones: dict[str, tuple[int, str]]) -> None:
        inventory = {n["number"]: n for n in data.numbers}
        for phone, (i, email) in phones.items():
            if phone in inventory:
                inventory[phone]["email"] = email
            elif data.org.get("kind") == "customer":
                self.bad(f"users[{i}].phone_number", phone, "is not in the org's numbers")

    def user(self, here: str, raw: Any, data: OrgData) -> tuple[dict[str, Any] | None, list[str]]:
        known = (*self.cat.fields, "role", "package", "licenses")
        m = self.mapping(here, raw, known)
        email = self.text(f"{here}.email", m.get("email"), required=True)
        if email is not None and not is_email(email):
            self.bad(f"{here}.email", email, "is not a valid email address")
            email = None
        user: dict[str, Any] = {"email": email.lower() if email else None, "email_display": email}
        extra: dict[str, str] = {}
        for fid, f in self.cat.fields.items():
            if fid == "email":
                continue
            value = self.field_value(f"{here}.{fid}", f.type, m.get(fid), data)
            if fid in TEXT_FIELDS or fid in BOOL_FIELDS:
                user[fid] = value
            elif value is not None:
                extra[fid] = str(value)
        user["extra"] = extra or None
        role = self.text(f"{here}.role", m.get("role")) or "user"
        user["role"] = self.one_of(f"{here}.role", role, ROLES, "a role")
        package = self.text(f"{here}.package", m.get("package"))
        user["package"] = self.one_of(f"{here}.package", package, self.cat.packages, "a package")
        lics = self.catalog_ids(
            f"{here}.licenses",
            m.get("licenses"),
            [lic.id for lic in self.cat.licenses.values()],
            "a basic or product license",
        )
        if email is None:
            return None, []
        return user, sorted(set(lics))

    def field_value(self, where: str, ftype: str, raw: Any, data: OrgData) -> Any:
        if ftype == "boolean":
            return self.flag(where, raw, default=None)
        if isinstance(raw, float):
            self.bad(where, raw, "is a number with a fraction or exponent: quote it")
            return None
        value = self.text(where, raw)
        if value is None:
            return None
        if ftype == "phone":
            if not is_e164(value):
                self.bad(where, value, "is not an E.164 number (+ and 8-15 digits)")
                return None
            return normalize_number(value)
        if ftype == "extension" and not is_extension(value):
            self.bad(where, value, "is not an extension (2-10 digits)")
        if ftype == "location" and value not in data.locations:
            self.bad(where, value, "is not a location of the org")
        if ftype == "site" and value not in data.sites:
            self.bad(where, value, "is not a Webex site of the org")
        return value


def store_org(engine: Engine, data: OrgData) -> int:
    """Create or replace the org's whole state in one transaction; return its new version."""
    oid = data.org["id"]
    with transaction(engine) as conn:
        current = conn.execute(
            select(Org.state_version).where(Org.id == oid).with_for_update()
        ).scalar()
        version = 1 if current is None else current + 1
        settings = {**data.org, "state_version": version}
        if current is None:
            conn.execute(insert(Org), settings)
        else:
            for name in ORG_STATE_TABLES:
                table = Base.metadata.tables[name]
                conn.execute(delete(table).where(table.c.org_id == oid))
            conn.execute(update(Org).where(Org.id == oid).values(settings))
        rows: list[tuple[Any, list[dict[str, Any]]]] = [
            (Location, [{"name": n} for n in data.locations]),
            (Site, [{"name": n} for n in data.sites]),
            (Number, data.numbers),
            (Pool, data.pools),
            (User, data.users),
            (UserLicense, data.licenses),
        ]
        for model, records in rows:
            if records:
                conn.execute(insert(model), [{**r, "org_id": oid} for r in records])
        return version
