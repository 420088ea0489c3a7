"""``schemas/*.yaml`` as typed objects.

Nothing in the engine names a package, a license or a header: it asks the catalogue. The
loader checks the schema files themselves and names the file, the key and the value that are
wrong, so a bad edit to ``schemas/`` fails loudly at start-up rather than mid-import.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
FIELD_TYPES = {"text", "name", "email", "phone", "extension", "boolean", "location", "site"}
_SPACE = re.compile(r"\s+")
# Characters trimmed from every cell and header: white space plus the zero-width family.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


class SchemaError(ValueError):
    """A file of ``schemas/`` is malformed; the message names file, key and value."""


def header_key(text: str) -> str:
    """How headers compare: NFC, trimmed, case-folded, white space collapsed."""
    text = unicodedata.normalize("NFC", text).strip(" \t\r\n\u00a0" + INVISIBLE)
    return _SPACE.sub(" ", text.replace("\u00a0", " ")).casefold()


@dataclass(frozen=True)
class Field:
    id: str
    header: str
    type: str
    aliases: tuple[str, ...] = ()
    missing_code: str = "missing_required_field"


@dataclass(frozen=True)
class Package:
    id: str
    header: str
    level: int
    calling: bool
    required: tuple[str, ...]
    recommended: tuple[str, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class License:
    """A basic license (unlimited) or a product license (from pools)."""

    id: str
    header: str
    kind: str  # "basic" or "product"
    aliases: tuple[str, ...] = ()
    default: bool = False
    integration: str | None = None
    managed_by: str | None = None


@dataclass(frozen=True)
class Group:
    """Fields of which at least one is required; reported once, on ``column``."""

    id: str
    any_of: tuple[str, ...]
    column: str
    label: str


@dataclass
class Catalog:
    fields: dict[str, Field]
    packages: dict[str, Package]
    licenses: dict[str, License]
    groups: dict[str, Group]
    readonly: list[str]
    true_words: frozenset[str]
    false_words: frozenset[str]
    public_domains: frozenset[str]
    name_max_length: int
    name_forbidden: str
    headers: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def key_field(self) -> str:
        """The field that identifies a row (``key: email`` in ``users.yaml``)."""
        return "email"

    @property
    def basic_licenses(self) -> list[License]:
        return [lic for lic in self.licenses.values() if lic.kind == "basic"]

    @property
    def product_licenses(self) -> list[License]:
        return [lic for lic in self.licenses.values() if lic.kind == "product"]

    @property
    def default_licenses(self) -> list[str]:
        return [lic.id for lic in self.basic_licenses if lic.default]

    def header_of(self, key: str) -> str:
        """The canonical header of a field, package or license id."""
        if key in self.fields:
            return self.fields[key].header
        if key in self.packages:
            return self.packages[key].header
        if key in self.licenses:
            return self.licenses[key].header
        raise KeyError(key)

    def match_header(self, header: str) -> tuple[str, str | None] | None:
        """``(kind, key)`` for an uploaded header (without suffixes), or None if unknown."""
        return self.headers.get(header_key(header))

    def canonical_columns(self) -> list[str]:
        """Field headers in the order of SPEC section 4."""
        return [f.header for f in self.fields.values()]


def _need(data: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise SchemaError(f"{where}: key '{key}' is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise SchemaError(f"{where}: key '{key}' has value {value!r} of the wrong type")
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path.name}: cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{path.name}: the top level must be a mapping")
    return data


def _fields(data: dict[str, Any], where: str) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for i, raw in enumerate(_need(data, "fields", where, list)):
        here = f"{where}: fields[{i}]"
        fid = _need(raw, "id", here, str)
        ftype = _need(raw, "type", here, str)
        if ftype not in FIELD_TYPES:
            raise SchemaError(f"{here}: key 'type' has unknown value {ftype!r}")
        out[fid] = Field(
            id=fid,
            header=_need(raw, "header", here, str),
            type=ftype,
            aliases=tuple(raw.get("aliases") or ()),
            missing_code=raw.get("missing_code", "missing_required_field"),
        )
    return out


def _packages(data: dict[str, Any], where: str, known: set[str]) -> dict[str, Package]:
    out: dict[str, Package] = {}
    for i, raw in enumerate(_need(data, "packages", where, list)):
        here = f"{where}: packages[{i}]"
        pid = _need(raw, "id", here, str)
        required = tuple(raw.get("required") or ())
        recommended = tuple(raw.get("recommended") or ())
        for name in required + recommended:
            if name not in known:
                raise SchemaError(f"{here}: requirement {name!r} is no field or group")
        out[pid] = Package(
            id=pid,
            header=_need(raw, "header", here, str),
            level=_need(raw, "level", here, int),
            calling=_need(raw, "calling", here, bool),
            required=required,
            recommended=recommended,
            aliases=tuple(raw.get("aliases") or ()),
        )
    return out


def _licenses(data: dict[str, Any], where: str) -> dict[str, License]:
    out: dict[str, License] = {}
    for section, kind in (("basic_licenses", "basic"), ("product_licenses", "product")):
        for i, raw in enumerate(data.get(section) or []):
            here = f"{where}: {section}[{i}]"
            lid = _need(raw, "id", here, str)
            out[lid] = License(
                id=lid,
                header=_need(raw, "header", here, str),
                kind=kind,
                aliases=tuple(raw.get("aliases") or ()),
                default=bool(raw.get("default", False)),
                integration=raw.get("integration"),
                managed_by=raw.get("managed_by"),
            )
    return out


def _groups(data: dict[str, Any], where: str, fields: dict[str, Field]) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for gid, raw in (data.get("groups") or {}).items():
        here = f"{where}: groups.{gid}"
        members = tuple(_need(raw, "any_of", here, list))
        for m in members:
            if m not in fields:
                raise SchemaError(f"{here}: member {m!r} is no field")
        out[gid] = Group(gid, members, _need(raw, "column", here, str), raw.get("label", gid))
    return out


HeaderEntry = tuple[str, str | None, tuple[str, ...]]


def _header_index(cat: Catalog) -> dict[str, tuple[str, str | None]]:
    entries: list[HeaderEntry] = []
    entries += [("field", f.id, (f.header, *f.aliases)) for f in cat.fields.values()]
    entries += [("package", p.id, (p.header, p.id, *p.aliases)) for p in cat.packages.values()]
    entries += [
        (lic.kind, lic.id, (lic.header, lic.id, *lic.aliases)) for lic in cat.licenses.values()
    ]
    entries += [("readonly", None, (h,)) for h in cat.readonly]
    return header_index(entries, "users.yaml")


def header_index(entries: list[HeaderEntry], where: str) -> dict[str, tuple[str, str | None]]:
    """``header_key(name) -> (kind, key)`` for every header and alias of ``entries``; a name
    claimed by two columns is an error in the schema file ``where``."""
    index: dict[str, tuple[str, str | None]] = {}
    for kind, key, names in entries:
        for name in names:
            k = header_key(name)
            if k in index and index[k] != (kind, key):
                raise SchemaError(f"{where}: header {name!r} is claimed by {index[k]} and {key}")
            index[k] = (kind, key)
    return index


def _words(data: dict[str, Any], key: str) -> set[str]:
    """Boolean words; each must be a string (unquoted YES/NO would be YAML booleans)."""
    words = _need(data, key, "booleans.yaml", list)
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise SchemaError(f"booleans.yaml: {key}[{i}] is {word!r}, not text: quote it")
    return {w.casefold() for w in words}


def load(directory: Path = SCHEMA_DIR) -> Catalog:
    """Read and check the catalogue in ``directory``."""
    users = _read(directory / "users.yaml")
    booleans = _read(directory / "booleans.yaml")
    public = _read(directory / "public_domains.yaml")
    fields = _fields(users, "users.yaml")
    groups = _groups(users, "users.yaml", fields)
    packages = _packages(users, "users.yaml", set(fields) | set(groups))
    readonly: list[str] = []
    for raw in users.get("readonly_columns") or []:
        readonly += [raw["header"], *(raw.get("aliases") or [])]
    rules = users.get("name_rules") or {}
    true_words = _words(booleans, "true_words")
    false_words = _words(booleans, "false_words")
    if true_words & false_words:
        raise SchemaError(f"booleans.yaml: words both true and false: {true_words & false_words}")
    cat = Catalog(
        fields=fields,
        packages=packages,
        licenses=_licenses(users, "users.yaml"),
        groups=groups,
        readonly=readonly,
        true_words=frozenset(true_words),
        false_words=frozenset(false_words),
        public_domains=frozenset(
            d.casefold() for d in _need(public, "domains", "public_domains.yaml", list)
        ),
        name_max_length=int(rules.get("max_length", 30)),
        name_forbidden=str(rules.get("forbidden", '%#<>\\/"')),
    )
    cat.headers = _header_index(cat)
    return cat


@lru_cache(maxsize=1)
def default() -> Catalog:
    """The catalogue shipped in ``schemas/``, loaded once per process."""
    return load()
