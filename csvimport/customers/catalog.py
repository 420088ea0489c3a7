"""``schemas/customers.yaml`` as a typed catalogue the shared reader and checks can use.

Why a catalogue of its own rather than more entries in ``users.yaml``: the customer file is a
different record (keyed by External Customer ID) with different columns, but it must be read by
the same reader, so this class satisfies ``read.HeaderCatalog`` (``key_field``,
``match_header``, ``header_of``). What it decided:

* The orderable packages are the users' packages (their ids, headers, levels and calling flags
  come from ``users.yaml``, never repeated here) plus the customer-only add-ons of
  ``customers.yaml`` with their dependencies.
* A quantity column ``<package header> Quantity`` is its own key, ``<package id>_quantity``
  (kind ``quantity``), so a duplicated quantity column is reported like any duplicated field.
* Package cells are matched like headers (``header_key``): ``Webex Calling``, ``webex_calling``
  and ``WEBEX CALLING`` are the same package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from csvimport import catalog as users_catalog
from csvimport.catalog import SCHEMA_DIR, SchemaError, header_index, header_key

FIELD_TYPES = {
    "text",
    "email",
    "external_id",
    "country",
    "template",
    "packages",
    "address",
    "company_name",
    "time_zone",
    "org_id",
    "boolean",
}
REQUIRED = {"always", "calling", "no"}
QUANTITY = "quantity"
_WHERE = "customers.yaml"


@dataclass(frozen=True)
class CustomerField:
    id: str
    header: str
    type: str
    required: str = "no"
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Orderable:
    """A package a customer may order: a users' package (``level`` set) or an add-on."""

    id: str
    header: str
    level: int | None
    calling: bool
    needs_calling: bool = False
    needs_any: tuple[str, ...] = ()
    wants_site: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def quantity_key(self) -> str:
        return f"{self.id}_{QUANTITY}"


@dataclass(frozen=True)
class Rules:
    company_name_forbidden: str
    address_max_length: int
    external_id_pattern: str
    default_location: str
    site: str
    approval_min_users: int


@dataclass
class CustomerCatalog:
    """The customer file's columns and packages; a ``read.HeaderCatalog``."""

    key: str
    fields: dict[str, CustomerField]
    packages: dict[str, Orderable]
    countries: frozenset[str]
    rules: Rules
    true_words: frozenset[str]
    false_words: frozenset[str]
    quantity_suffixes: tuple[str, ...]
    headers: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def key_field(self) -> str:
        return self.key

    def match_header(self, header: str) -> tuple[str, str | None] | None:
        return self.headers.get(header_key(header))

    def header_of(self, key: str) -> str:
        if key in self.fields:
            return self.fields[key].header
        for pkg in self.packages.values():
            if key == pkg.quantity_key:
                return f"{pkg.header} {self.quantity_suffixes[0]}"
            if key == pkg.id:
                return pkg.header
        raise KeyError(key)

    def package_of(self, token: str) -> str | None:
        """The package id a Packages cell token names (id, header or alias), or None."""
        return self.tokens.get(header_key(token))

    def quantity_package(self, key: str) -> str:
        """The package id of a quantity column key."""
        return key.removesuffix(f"_{QUANTITY}")

    def canonical_columns(self) -> list[str]:
        """Field headers in file order, then one quantity column per package."""
        quantities = [self.header_of(p.quantity_key) for p in self.packages.values()]
        return [f.header for f in self.fields.values()] + quantities


def _need(data: dict[str, Any], key: str, where: str, kind: type) -> Any:
    """``data[key]``, which must be a ``kind`` (YAML's true is no number here)."""
    value = data.get(key)
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if key not in data or wrong:
        raise SchemaError(f"{where}: key '{key}' is missing or has the wrong value {value!r}")
    return value


def _fields(data: dict[str, Any]) -> dict[str, CustomerField]:
    out: dict[str, CustomerField] = {}
    for i, raw in enumerate(_need(data, "fields", _WHERE, list)):
        here = f"{_WHERE}: fields[{i}]"
        ftype = _need(raw, "type", here, str)
        required = raw.get("required", "no")
        if ftype not in FIELD_TYPES or required not in REQUIRED:
            raise SchemaError(f"{here}: unknown type {ftype!r} or required {required!r}")
        fid = _need(raw, "id", here, str)
        out[fid] = CustomerField(
            fid, _need(raw, "header", here, str), ftype, required, tuple(raw.get("aliases") or ())
        )
    return out


def _packages(data: dict[str, Any], users: users_catalog.Catalog) -> dict[str, Orderable]:
    out = {
        p.id: Orderable(
            p.id,
            p.header,
            p.level,
            p.calling,
            wants_site="preferred_site" in p.recommended + p.required,
            aliases=p.aliases,
        )
        for p in users.packages.values()
    }
    for i, raw in enumerate(data.get("addons") or []):
        here = f"{_WHERE}: addons[{i}]"
        needs_any = tuple(raw.get("needs_any") or ())
        for need in needs_any:
            if need not in users.packages:
                raise SchemaError(f"{here}: needs_any names {need!r}, which is no package")
        aid = _need(raw, "id", here, str)
        if aid in out:
            raise SchemaError(f"{here}: id {aid!r} is already a package")
        out[aid] = Orderable(
            aid,
            _need(raw, "header", here, str),
            None,
            False,
            needs_calling=bool(raw.get("needs_calling", False)),
            needs_any=needs_any,
            aliases=tuple(raw.get("aliases") or ()),
        )
    return out


def _rules(data: dict[str, Any]) -> Rules:
    raw = _need(data, "rules", _WHERE, dict)
    here = f"{_WHERE}: rules"
    return Rules(
        company_name_forbidden=_need(raw, "company_name_forbidden", here, str),
        address_max_length=_need(raw, "address_max_length", here, int),
        external_id_pattern=_need(raw, "external_id_pattern", here, str),
        default_location=_need(raw, "default_location", here, str),
        site=_need(raw, "site", here, str),
        approval_min_users=_need(raw, "approval_min_users", here, int),
    )


def _index(entries: list[tuple[str, str | None, tuple[str, ...]]]) -> dict[str, Any]:
    return header_index(entries, _WHERE)


def load(directory: Path = SCHEMA_DIR) -> CustomerCatalog:
    """Read and check ``customers.yaml`` (with ``users.yaml`` and ``countries.yaml``)."""
    data = users_catalog._read(directory / "customers.yaml")
    users = users_catalog.load(directory)
    countries = _need(
        users_catalog._read(directory / "countries.yaml"), "countries", "countries.yaml", dict
    )
    fields = _fields(data)
    key = _need(data, "key", _WHERE, str)
    if key not in fields:
        raise SchemaError(f"{_WHERE}: key {key!r} is no field")
    packages = _packages(data, users)
    suffixes = tuple(str(s) for s in _need(data, "quantity_suffixes", _WHERE, list))
    cat = CustomerCatalog(
        key=key,
        fields=fields,
        packages=packages,
        countries=frozenset(str(c).upper() for c in countries),
        rules=_rules(data),
        true_words=users.true_words,
        false_words=users.false_words,
        quantity_suffixes=suffixes,
    )
    headers: list[tuple[str, str | None, tuple[str, ...]]] = [
        ("field", f.id, (f.header, *f.aliases)) for f in fields.values()
    ]
    for p in packages.values():
        names = (p.header, p.id, *p.aliases)
        headers.append(
            (QUANTITY, p.quantity_key, tuple(f"{n} {s}" for n in names for s in suffixes))
        )
    cat.headers = _index(headers)
    cat.tokens = {
        k: v[1]
        for k, v in _index(
            [("package", p.id, (p.header, p.id, *p.aliases)) for p in packages.values()]
        ).items()
    }
    return cat


@lru_cache(maxsize=1)
def default() -> CustomerCatalog:
    """The customer catalogue shipped in ``schemas/``, loaded once per process."""
    return load()
