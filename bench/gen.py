"""Seeded generator of realistic Control Hub user files and of org files that overlap them.

Why it exists: the benchmarks and the tests need inputs that look like what administrators
upload (German, Norwegian and Danish names with umlauts, æøå and ß; E.164 numbers per country;
extensions unique per location; Control Hub headers) at any size up to millions of rows, with a
known share of defects and, against an org, a known mix of new, modified and unchanged users.

What it decided:

- Every attribute of "person *i*" is a pure function of ``(seed, i)`` through a counter-based
  hash (splitmix64), not a sequential random stream. The org file and the users file therefore
  agree on a person without sharing any state, and the users file can pick any subset of people.
- Everything is vectorised: numpy ``StringDType`` arrays and ``np.strings`` for text, Arrow's CSV
  writer for output. One million rows take a few seconds.
- Locations follow a fixed 20-slot pattern, so a person's rank inside their location (and with
  it the extension and the phone number) is also a function of *i* alone: unique per location
  for any subset of people, and identical in the org file.
- Headers, package ids and license ids are read from ``schemas/users.yaml``; only the choice of
  which packages people hold (Webex Calling, Webex Suite) is made here.
- Each bad row carries exactly one defect, drawn round-robin over ``DEFECTS`` (every row-level
  code of SPEC section 5 that needs no org and can be written on one row), so every code appears
  as soon as there are ``len(DEFECTS)`` bad rows. ``UsersFile.defects`` says which row got what.

CLI::

    python -m bench.gen users --rows 1000000 --seed 1 --bad 0.05 -o users.csv
    python -m bench.gen users --rows 100000 --org-users 100000 -o users.csv   # against an org
    python -m bench.gen org --users 100000 -o org.json                         # .yaml or .json
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from numpy.dtypes import StringDType

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "users.yaml"
S = StringDType()
Arr = npt.NDArray[Any]

# Row-level codes of SPEC section 5 that need no org; one defect per bad row, round-robin.
# suspended_license is a property of a column header, not of a row, so it is not here.
DEFECTS: tuple[str, ...] = (
    "missing_email",
    "invalid_email",
    "duplicate_email",
    "invalid_boolean",
    "multiple_packages",
    "missing_required_field",
    "missing_preferred_site",
    "invalid_name",
    "invalid_phone",
    "number_mangled",
    "invalid_extension",
    "duplicate_phone",
    "duplicate_extension",
    "delete_requires_remove_mode",
)

# --- reference data -------------------------------------------------------------------------
# Countries: 0 Germany, 1 Norway, 2 Denmark.
_DE, _NO, _DK = 0, 1, 2


@dataclass(frozen=True)
class _Location:
    name: str
    country: int
    prefix: str  # E.164 country code + area code
    sub_digits: int  # digits of the subscriber part after the prefix


LOCATIONS: tuple[_Location, ...] = (
    _Location("HQ", _DE, "+4940", 7),  # Hamburg head office
    _Location("Berlin", _DE, "+4930", 7),
    _Location("München", _DE, "+4989", 7),
    _Location("Oslo", _NO, "+4722", 6),
    _Location("Bergen", _NO, "+4755", 6),
    _Location("København", _DK, "+4533", 6),
    _Location("Aarhus", _DK, "+4586", 6),
)
# 20 slots: HQ 6, Berlin 4, München 2, Oslo 3, Bergen 1, København 3, Aarhus 1.
_PATTERN = np.array([0, 1, 3, 0, 5, 2, 0, 1, 4, 0, 3, 5, 1, 0, 2, 6, 3, 0, 5, 1], dtype=np.int64)
_SLOTS = len(_PATTERN)
_PER_CYCLE = np.bincount(_PATTERN, minlength=len(LOCATIONS)).astype(np.int64)
_OCC = np.array([int(np.sum(_PATTERN[:j] == _PATTERN[j])) for j in range(_SLOTS)], dtype=np.int64)

_FIRST = {
    _DE: "Jürgen Jörg Günther Björn Sören Lukas Maximilian Felix Jonas Paul Anna Lena Käthe "
    "Jürgen Ute Sabine Bärbel Hannah Sophie Marie Lea Greta Ömer Timo Uwe Ines Götz Dörte",
    _NO: "Bjørn Øystein Håkon Ståle Pål Ole Lars Knut Sindre Tørris Åse Ingrid Kjersti Solveig "
    "Sigrid Ragnhild Mari Ingvild Tone Eirin Jørgen Nils Dag Åsmund Siri Ørjan",
    _DK: "Søren Jørgen Mads Frederik Rasmus Anders Mikkel Bjørn Kasper Troels Mette Lærke Astrid "
    "Signe Maja Sørine Ida Freja Birgitte Søs Karen Dorthe Jens Niels Bodil Åge",
}
_LAST = {
    _DE: "Müller Schröder Weiß Groß Köhler Schäfer Krüger Becker Hoffmann Strauß Fuß Jäger Möller "
    "Schmidt Meißner Bäcker Lößner Größer Weißmann Öztürk Wagner Hüttner Schneider Fischer",
    _NO: "Løvås Bråten Sæther Ødegård Haugen Dahl Kristiansen Bjørnstad Åsheim Solbakken Hansen "
    "Johansen Strøm Nygård Lien Berg Holm Rønning Bakke Sørlie Aasen Myhre",
    _DK: "Jørgensen Sørensen Nørgaard Kjær Bæk Østergaard Mølgaard Thomsen Nielsen Andersen "
    "Rasmussen Møller Højgaard Lauridsen Kløvedal Damgård Søndergaard Brøndum Vestergaard Holm",
}
_TITLES = {
    _DE: "Vertriebsleiterin|Softwareentwickler|Buchhalterin|Teamleiter Support|Einkäufer|"
    "Geschäftsführerin|Sachbearbeiter|Projektmanagerin|Werkstudent|Systemadministrator",
    _NO: "Daglig leder|Utvikler|Rådgiver|Selger|Økonomisjef|Prosjektleder|Kundebehandler|"
    "Systemansvarlig",
    _DK: "Udvikler|Konsulent|Salgschef|Bogholder|Projektleder|Kundeservicemedarbejder|"
    "Økonomichef|Systemadministrator",
}
_DEPTS = {
    _DE: "Vertrieb|Entwicklung|Finanzen|Kundendienst|Einkauf|Personal|Geschäftsleitung|Logistik",
    _NO: "Salg|Utvikling|Økonomi|Kundeservice|Innkjøp|Personal|Ledelse",
    _DK: "Salg|Udvikling|Økonomi|Kundeservice|Indkøb|Personale|Direktion",
}
_INVALID_BOOL = {_DE: "ja", _NO: "nei", _DK: "nej"}  # natural, but not boolean words
_TRANSLIT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa", " ": ""}
)

ROLE_ADMINS = 2  # persons 0 and 1 are the org's full administrators
ORG_PACKAGE = "webex_suite"
_CALLING, _SUITE = "webex_calling", "webex_suite"


def _ascii(name: str) -> str:
    """E-mail local parts are ASCII in practice: Jürgen Weiß -> juergen.weiss."""
    text = name.lower().translate(_TRANSLIT)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@dataclass(frozen=True)
class _Pool:
    """Words of one kind for all countries, concatenated, with per-country offset and length."""

    words: Arr
    ascii: Arr
    offset: Arr
    length: Arr

    @classmethod
    def build(cls, by_country: dict[int, list[str]]) -> _Pool:
        words: list[str] = []
        offset, length = [], []
        for country in (_DE, _NO, _DK):
            offset.append(len(words))
            words.extend(by_country[country])
            length.append(len(by_country[country]))
        return cls(
            np.array(words, dtype=S),
            np.array([_ascii(w) for w in words], dtype=S),
            np.array(offset, dtype=np.uint64),
            np.array(length, dtype=np.uint64),
        )

    def pick(self, country: Arr, h: Arr, shift: int = 0) -> Arr:
        """Index of a word of the person's country chosen by hash ``h`` (``shift``: next one)."""
        n = self.length[country]
        return (self.offset[country] + (h + np.uint64(shift)) % n).astype(np.int64)


_FIRST_POOL = _Pool.build({c: s.split() for c, s in _FIRST.items()})
_LAST_POOL = _Pool.build({c: s.split() for c, s in _LAST.items()})
_TITLE_POOL = _Pool.build({c: s.split("|") for c, s in _TITLES.items()})
_DEPT_POOL = _Pool.build({c: s.split("|") for c, s in _DEPTS.items()})


# --- schema -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Schema:
    """The headers the generator writes, in SPEC section 4 order, from ``schemas/users.yaml``."""

    fields: dict[str, str]  # field id -> canonical header
    packages: dict[str, str]
    basic: dict[str, str]
    default_licenses: list[str]

    @classmethod
    def load(cls, path: Path = SCHEMA) -> _Schema:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(
            {f["id"]: f["header"] for f in data["fields"]},
            {p["id"]: p["header"] for p in data["packages"]},
            {b["id"]: b["header"] for b in data["basic_licenses"]},
            [b["id"] for b in data["basic_licenses"] if b.get("default")],
        )


# --- people -----------------------------------------------------------------------------------
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), 0x9E3779B97F4A7C15


def _hash(ids: Arr, seed: int, salt: int) -> Arr:
    """splitmix64 of (seed, salt, id): independent uniform uint64 per person and purpose."""
    key = np.uint64((seed * 0x632BE59BD9B4E019 + salt * _GOLD) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * np.uint64(_GOLD) + key
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _cat(*parts: Arr | str) -> Arr:
    """Element-wise concatenation, pairwise so long rows are copied log2(parts) times, not
    once per part (a JSON user line has ~40 parts)."""
    items: list[Any] = list(parts)
    while len(items) > 1:
        pairs = [np.strings.add(a, b) for a, b in zip(items[::2], items[1::2], strict=False)]
        items = pairs + ([items[-1]] if len(items) % 2 else [])
    return np.asarray(items[0], dtype=S)


def domain_of(org: str) -> str:
    """The org's e-mail domain: ``bench`` -> ``bench.example`` (RFC 2606, never real)."""
    return f"{org}.example"


def sites_of(org: str) -> list[str]:
    return [f"{org}.webex.com", f"{org}-eu.webex.com"]


def _email(ids: Arr, seed: int, domain: str) -> Arr:
    country = np.array([loc.country for loc in LOCATIONS])[_PATTERN[ids % _SLOTS]]
    fi = _FIRST_POOL.pick(country, _hash(ids, seed, 1))
    li = _LAST_POOL.pick(country, _hash(ids, seed, 2))
    number = (ids + 1).astype(S)
    return _cat(_FIRST_POOL.ascii[fi], ".", _LAST_POOL.ascii[li], number, "@" + domain)


@dataclass
class People:
    """Attributes of a set of persons as parallel arrays (text as ``StringDType``)."""

    ids: Arr
    first: Arr
    last: Arr
    display: Arr
    email: Arr
    extension: Arr
    phone_all: Arr  # the person's number whether or not they use it (for defects, inventory)
    has_phone: Arr
    location: Arr  # index into LOCATIONS
    title: Arr
    department: Arr
    manager: Arr
    jabber_calling: Arr
    jabber_teams: Arr
    site: Arr
    package: Arr  # package id
    call_on_webex: Arr
    admin: Arr

    @property
    def phone(self) -> Arr:
        return np.where(self.has_phone, self.phone_all, "").astype(S)

    @property
    def country(self) -> Arr:
        return np.array([loc.country for loc in LOCATIONS])[self.location]

    @property
    def location_name(self) -> Arr:
        return np.array([loc.name for loc in LOCATIONS], dtype=S)[self.location]


def people(ids: Arr, seed: int, org: str, modified: Arr | None = None) -> People:
    """Persons ``ids`` as they are in the org; ``modified`` marks those whose row changes them.

    A modification is one of: another title, another department, Jabber with Webex Teams
    flipped, or an upgrade from Webex Calling to Webex Suite (a higher level, so never an
    ``admin_downgrade``); each keeps the row valid and the plan clean.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    loc = _PATTERN[ids % _SLOTS]
    country = np.array([x.country for x in LOCATIONS])[loc]
    rank = (ids // _SLOTS) * _PER_CYCLE[loc] + _OCC[ids % _SLOTS]
    # Extensions 1000..9999 for the first 9000 of a location, then 19000 upwards: injective.
    ext = np.where(rank < 9000, 1000 + rank, 10000 + rank)
    base = np.array([10 ** (x.sub_digits - 1) for x in LOCATIONS], dtype=np.int64)[loc]
    cap = np.array([9 * 10 ** (x.sub_digits - 1) for x in LOCATIONS], dtype=np.int64)[loc]
    if n and bool(np.any(rank >= cap)):
        raise ValueError("too many people for the phone number plan of a location")
    prefix = np.array([x.prefix for x in LOCATIONS], dtype=S)[loc]
    domain = domain_of(org)

    fi = _FIRST_POOL.pick(country, _hash(ids, seed, 1))
    li = _LAST_POOL.pick(country, _hash(ids, seed, 2))
    first, last = _FIRST_POOL.words[fi], _LAST_POOL.words[li]
    email = _cat(
        _FIRST_POOL.ascii[fi], ".", _LAST_POOL.ascii[li], (ids + 1).astype(S), "@" + domain
    )
    lead = ids - ids % 10
    manager = np.where(ids % 10 != 0, _email(lead, seed, domain), "").astype(S)

    h_title, h_dept = _hash(ids, seed, 4), _hash(ids, seed, 5)
    jabber_teams = _hash(ids, seed, 7) % np.uint64(10) < np.uint64(6)
    admin = ids < ROLE_ADMINS
    suite = (_hash(ids, seed, 8) % np.uint64(10) < np.uint64(4)) | admin
    title_shift = np.zeros(n, dtype=bool)
    dept_shift = np.zeros(n, dtype=bool)
    if modified is not None:
        kind = _hash(ids, seed, 10) % np.uint64(4)
        upgrade = modified & (kind == 3) & ~suite
        title_shift = modified & ((kind == 0) | ((kind == 3) & suite))
        dept_shift = modified & (kind == 1)
        jabber_teams = np.where(modified & (kind == 2), ~jabber_teams, jabber_teams)
        suite = suite | upgrade
    title = _TITLE_POOL.words[_TITLE_POOL.pick(country, h_title)]
    title = np.where(title_shift, _TITLE_POOL.words[_TITLE_POOL.pick(country, h_title, 1)], title)
    dept = _DEPT_POOL.words[_DEPT_POOL.pick(country, h_dept)]
    dept = np.where(dept_shift, _DEPT_POOL.words[_DEPT_POOL.pick(country, h_dept, 1)], dept)
    sites = np.array(sites_of(org), dtype=S)

    return People(
        ids=ids,
        first=first,
        last=last,
        display=_cat(first, " ", last),
        email=email,
        extension=ext.astype(S),
        phone_all=_cat(prefix, (base + rank).astype(S)),
        has_phone=_hash(ids, seed, 3) % np.uint64(10) < np.uint64(7),
        location=loc,
        title=title.astype(S),
        department=dept.astype(S),
        manager=manager,
        jabber_calling=_hash(ids, seed, 6) % np.uint64(10) < np.uint64(8),
        jabber_teams=jabber_teams,
        site=sites[(_hash(ids, seed, 9) % np.uint64(10) == 0).astype(np.int64)],
        package=np.where(suite, _SUITE, _CALLING).astype(S),
        call_on_webex=_hash(ids, seed, 11) % np.uint64(10) < np.uint64(9),
        admin=admin,
    )


# --- users file -------------------------------------------------------------------------------
@dataclass
class UsersFile:
    """What ``build_users`` made: the columns, and the truth about every row."""

    columns: dict[str, Arr]  # header -> text cells
    persons: Arr  # person id of each row
    category: Arr  # "new", "modified" or "unchanged" (all "new" without an org)
    defects: dict[int, str] = field(default_factory=dict)  # spreadsheet row -> intended code

    @property
    def rows(self) -> int:
        return len(self.persons)


def _bool_text(values: Arr) -> Arr:
    return np.where(values, "TRUE", "FALSE").astype(S)


def _mix(rows: int, org_users: int | None, rng: np.random.Generator) -> tuple[Arr, Arr, Arr]:
    """Persons of the file and their category: against an org of ``org_users`` people, half
    the rows modify existing users, a sixth leave them unchanged and a third are new (new
    people take ids from ``org_users`` up, which the org's number inventory already covers)."""
    if not org_users:
        return np.arange(rows, dtype=np.int64), np.full(rows, "new", dtype=S), np.zeros(rows, bool)
    existing = min(org_users, rows - rows // 3)
    n_mod = min(existing, round(rows / 2))
    n_new = rows - existing
    persons = np.concatenate(
        [rng.choice(org_users, existing, replace=False), org_users + np.arange(n_new)]
    ).astype(np.int64)
    category = np.array(["modified"] * n_mod + ["unchanged"] * (existing - n_mod) + ["new"] * n_new)
    order = rng.permutation(rows)
    persons, category = persons[order], category[order]
    return persons, category.astype(S), category == "modified"


def build_users(
    rows: int,
    seed: int = 1,
    bad_fraction: float = 0.0,
    org: str = "bench",
    org_users: int | None = None,
) -> UsersFile:
    """The users file as columns, without writing it (tests and ``write_users`` share this)."""
    schema = _Schema.load()
    rng = np.random.default_rng([seed, 0xC5F])
    persons, category, modified = _mix(rows, org_users, rng)
    p = people(persons, seed, org, modified)
    f = schema.fields
    cols: dict[str, Arr] = {
        f["first_name"]: p.first.copy(),
        f["last_name"]: p.last.copy(),
        f["display_name"]: p.display,
        f["email"]: p.email.copy(),
        f["extension"]: p.extension.copy(),
        f["phone_number"]: p.phone,
        f["caller_id_number"]: np.full(rows, "", dtype=S),
        f["caller_id_first_name"]: np.full(rows, "", dtype=S),
        f["caller_id_last_name"]: np.full(rows, "", dtype=S),
        f["location"]: p.location_name,
        f["title"]: p.title,
        f["department"]: p.department,
        f["manager"]: p.manager,
        f["jabber_calling"]: _bool_text(p.jabber_calling),
        f["jabber_teams"]: _bool_text(p.jabber_teams),
        f["preferred_site"]: p.site.copy(),
    }
    for pid, header in schema.packages.items():
        cols[header] = _bool_text(p.package == pid)
    for lid, header in schema.basic.items():
        cols[header] = _bool_text(
            p.call_on_webex if lid == "call_on_webex" else np.ones(rows, bool)
        )
    out = UsersFile(cols, persons, category)
    if bad_fraction > 0 and rows > 1:
        _inject(out, p, schema, rng, bad_fraction)
    return out


def _inject(
    out: UsersFile, p: People, schema: _Schema, rng: np.random.Generator, fraction: float
) -> None:
    """Give ``fraction`` of the rows one defect each, round-robin over ``DEFECTS``.

    Duplicates copy the value of the nearest earlier row that has no defect, so they are
    "second occurrences" and the first occurrence stays clean. Replacement values are derived
    from the row's own unique values so that a defect never creates a second, accidental one
    (e.g. two invalid extensions that would also be duplicates).
    """
    rows = out.rows
    n_bad = min(rows - 1, max(1, round(rows * fraction)))
    pos = np.sort(rng.choice(np.arange(1, rows), n_bad, replace=False))
    kinds = rng.permutation(np.arange(n_bad) % len(DEFECTS))
    clean = np.ones(rows, dtype=bool)
    clean[pos] = False
    clean_rows = np.flatnonzero(clean)
    clean_phone_rows = np.flatnonzero(clean & p.has_phone)
    f, c = schema.fields, out.columns
    country = p.country
    variant = np.arange(n_bad)

    def earlier(candidates: Arr, at: Arr) -> Arr:
        k = np.searchsorted(candidates, at) - 1
        return np.where(k >= 0, candidates[np.maximum(k, 0)], -1)

    # A duplicate needs an earlier clean row; the rare row without one gets invalid_email.
    ref = earlier(clean_rows, pos)
    ref_phone = earlier(clean_phone_rows, pos)
    dup_kinds = {DEFECTS.index(k) for k in ("duplicate_email", "duplicate_extension")}
    lacking = (np.isin(kinds, list(dup_kinds)) & (ref < 0)) | (
        (kinds == DEFECTS.index("duplicate_phone")) & (ref_phone < 0)
    )
    kinds = np.where(lacking, DEFECTS.index("invalid_email"), kinds)

    def rows_of(code: str) -> tuple[Arr, Arr, Arr, Arr]:
        sel = kinds == DEFECTS.index(code)
        return pos[sel], ref[sel], ref_phone[sel], variant[sel]

    email, ext, phone = c[f["email"]], c[f["extension"]], c[f["phone_number"]]
    r, _, _, v = rows_of("missing_email")
    email[r] = ""
    r, _, _, v = rows_of("invalid_email")
    at = np.strings.replace(email[r], "@", ".")
    twice = np.strings.replace(email[r], "@", "@@")
    email[r] = np.where(v % 2 == 0, at, twice)
    r, q, _, v = rows_of("duplicate_email")
    email[r] = np.where(v % 2 == 0, email[q], np.strings.upper(email[q]))  # case-insensitive
    r, _, _, _ = rows_of("invalid_boolean")
    words = np.array([_INVALID_BOOL[k] for k in (_DE, _NO, _DK)], dtype=S)
    c[f["jabber_calling"]][r] = words[country[r]]
    r, _, _, _ = rows_of("multiple_packages")
    for pid in (_CALLING, _SUITE):
        c[schema.packages[pid]][r] = "TRUE"
    r, _, _, v = rows_of("missing_required_field")
    c[f["jabber_teams"]][r[v % 3 == 0]] = ""
    c[f["jabber_calling"]][r[v % 3 == 1]] = ""
    ext[r[v % 3 == 2]] = ""
    phone[r[v % 3 == 2]] = ""
    r, _, _, _ = rows_of("missing_preferred_site")
    c[f["preferred_site"]][r] = ""
    r, _, _, v = rows_of("invalid_name")
    first, last = c[f["first_name"]], c[f["last_name"]]
    first[r[v % 3 == 0]] = _cat(first[r[v % 3 == 0]], " #2")
    last[r[v % 3 == 1]] = _cat(last[r[v % 3 == 1]], "/Schmidt")
    first[r[v % 3 == 2]] = _cat(first[r[v % 3 == 2]], "-Alexander-Friedrich-Wilhelm")
    r, _, _, _ = rows_of("invalid_phone")
    phone[r] = _cat("0", np.strings.slice(p.phone_all[r], 3, None))  # national format, no +cc
    r, _, _, v = rows_of("number_mangled")
    digits = np.strings.slice(p.phone_all[r], 1, None)
    exponent = (np.strings.str_len(digits) - 1).astype(S)
    # All digits kept (as a wide Excel column shows them) so two mangled numbers never collide.
    sci = _cat(
        np.strings.slice(digits, 0, 1), ".", np.strings.slice(digits, 1, None), "E+", exponent
    )
    phone[r[v % 2 == 0]] = sci[v % 2 == 0]
    ext[r[v % 2 == 1]] = _cat(ext[r[v % 2 == 1]], ".0")
    r, _, _, v = rows_of("invalid_extension")
    ext[r] = np.where(v % 2 == 0, _cat("x", ext[r]), _cat("99", ext[r], "999999"))
    r, _, qp, v = rows_of("duplicate_phone")
    spaced = _cat(np.strings.slice(phone[qp], 0, 3), " ", np.strings.slice(phone[qp], 3, None))
    phone[r] = np.where(v % 2 == 0, phone[qp], spaced)  # equal after normalising
    r, q, _, _ = rows_of("duplicate_extension")
    c[f["location"]][r] = c[f["location"]][q]
    ext[r] = ext[q]
    r, _, _, _ = rows_of("delete_requires_remove_mode")
    for header in schema.packages.values():
        c[header][r] = "FALSE"
    out.defects = {int(row) + 2: DEFECTS[int(k)] for row, k in zip(pos, kinds, strict=True)}


def write_users(
    path: str | Path,
    rows: int,
    seed: int = 1,
    bad_fraction: float = 0.0,
    org: str | None = None,
    org_users: int | None = None,
) -> UsersFile:
    """Write a users CSV (UTF-8, comma, LF, quoted only where needed); return its truth.

    ``org`` is the org id whose domain the e-mails use (default ``bench``); ``org_users`` makes
    the file overlap ``write_org(users=org_users)`` of the same seed and org (see ``_mix``).
    """
    data = build_users(rows, seed, bad_fraction, org or "bench", org_users)
    table = pa.table({h: pa.array(v, type=pa.string()) for h, v in data.columns.items()})
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(data.columns)
    # Control Hub writes no quotes, and Arrow would quote every header: write it ourselves.
    for style in ("none", "needed"):
        with open(path, "wb") as fh:
            fh.write(header.getvalue().encode("utf-8"))
            try:
                opts = pacsv.WriteOptions(include_header=False, quoting_style=style)
                pacsv.write_csv(table, fh, opts)
                break
            except pa.ArrowInvalid:  # a value needs quotes after all
                continue
    return data


# --- org file ---------------------------------------------------------------------------------
@dataclass
class _OrgParts:
    """The org described by arrays, shared by the dict builder and the fast JSON writer."""

    head: dict[str, Any]  # org, locations, sites: everything before numbers
    numbers: Arr
    number_locations: Arr
    pools: list[dict[str, Any]]
    people: People
    licenses: tuple[list[str], list[str]]  # with and without call_on_webex


def _org_parts(users: int, seed: int, org: str) -> _OrgParts:
    """The SPEC section 9 org holding persons ``0..users-1``.

    The number inventory covers persons ``0..2*users-1`` (those who have a number), so a users
    file with up to ``users`` new people plans without ``number_not_in_inventory``; pools hold
    ``2*users + 10`` seats of each package the generator uses, enough for every new user and
    every upgrade.
    """
    schema = _Schema.load()
    inventory = people(np.arange(2 * users, dtype=np.int64), seed, org)
    base = [lic for lic in schema.basic if lic != "call_on_webex"]
    seats = 2 * users + 10
    head = {
        "org": {
            "id": org,
            "name": f"{org.capitalize()} GmbH",
            "kind": "customer",
            "package": ORG_PACKAGE,
            "directory_sync": False,
            "integrations": [],
            "default_licenses": schema.default_licenses,
            "verified_domains": [domain_of(org)],
            "claimed_domains": [],
            "trial": False,
        },
        "locations": [{"name": loc.name} for loc in LOCATIONS],
        "sites": sites_of(org),
    }
    pools = [
        {"license": lic, "quantity": seats, "status": "active", "order": f"ORD-{i + 1}"}
        for i, lic in enumerate((_CALLING, _SUITE))
    ]
    return _OrgParts(
        head,
        inventory.phone_all[inventory.has_phone],
        inventory.location_name[inventory.has_phone],
        pools,
        people(np.arange(users, dtype=np.int64), seed, org),
        ([*base, "call_on_webex"], base),
    )


def build_org(users: int, seed: int = 1, org: str = "bench") -> dict[str, Any]:
    """The org description as plain data, ready for ``json`` or ``yaml``."""
    parts = _org_parts(users, seed, org)
    p = parts.people
    numbers = [
        {"number": n, "location": loc}
        for n, loc in zip(parts.numbers.tolist(), parts.number_locations.tolist(), strict=True)
    ]
    columns = zip(
        p.email.tolist(),
        p.first.tolist(),
        p.last.tolist(),
        p.display.tolist(),
        p.admin.tolist(),
        p.package.tolist(),
        p.extension.tolist(),
        p.phone.tolist(),
        p.location_name.tolist(),
        p.title.tolist(),
        p.department.tolist(),
        p.manager.tolist(),
        p.site.tolist(),
        p.jabber_calling.tolist(),
        p.jabber_teams.tolist(),
        p.call_on_webex.tolist(),
        strict=True,
    )
    user_list = []
    frozen = gc.isenabled()
    gc.disable()  # a million small dicts: the cyclic collector would rescan them again and again
    try:
        for em, fn, ln, dn, adm, pkg, ext, ph, loc, ti, dep, man, site, jc, jt, cow in columns:
            user: dict[str, Any] = {
                "email": em,
                "first_name": fn,
                "last_name": ln,
                "display_name": dn,
                "role": "full_admin" if adm else "user",
                "package": pkg,
                "extension": ext,
            }
            if ph:
                user["phone_number"] = ph
            user |= {"location": loc, "title": ti, "department": dep}
            if man:
                user["manager"] = man
            user |= {
                "preferred_site": site,
                "jabber_calling": jc,
                "jabber_teams": jt,
                "licenses": list(parts.licenses[0] if cow else parts.licenses[1]),
            }
            user_list.append(user)
    finally:
        if frozen:
            gc.enable()
    return {**parts.head, "numbers": numbers, "pools": parts.pools, "users": user_list}


@dataclass(frozen=True)
class OrgFile:
    """What ``write_org`` wrote."""

    path: Path
    users: int
    numbers: int
    seats: int  # of each pool


def write_org(path: str | Path, users: int, seed: int = 1, org: str = "bench") -> OrgFile:
    """Write the org file: JSON for a ``.json`` path (fast at a million users), else YAML."""
    path = Path(path)
    data = build_org(users, seed, org)
    with path.open("w", encoding="utf-8") as fh:
        if path.suffix.lower() == ".json":  # the C encoder: json.dump would use the Python one
            fh.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        else:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            yaml.dump(data, fh, Dumper=dumper, allow_unicode=True, sort_keys=False, width=120)
    numbers = len(data["numbers"])
    return OrgFile(path, users, numbers, 2 * users + 10)


# --- command line -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gen", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    u = sub.add_parser("users", help="a users CSV")
    u.add_argument("--rows", type=int, required=True)
    u.add_argument("--seed", type=int, default=1)
    u.add_argument("--bad", type=float, default=0.0, help="fraction of rows with one defect")
    u.add_argument("--org", default="bench", help="org id (its domain is <org>.example)")
    u.add_argument("--org-users", type=int, help="overlap the org file of this many users")
    u.add_argument("--truth", help="also write row,code of every injected defect to this CSV")
    u.add_argument("-o", "--output", required=True)
    o = sub.add_parser("org", help="an org description file (.json or .yaml)")
    o.add_argument("--users", type=int, required=True)
    o.add_argument("--seed", type=int, default=1)
    o.add_argument("--org", default="bench")
    o.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.what == "users":
        data = write_users(args.output, args.rows, args.seed, args.bad, args.org, args.org_users)
        if args.truth:
            lines = ["row,code"] + [f"{row},{code}" for row, code in data.defects.items()]
            Path(args.truth).write_text("\n".join(lines) + "\n", encoding="utf-8")
        what = f"{data.rows} rows, {len(data.defects)} with a defect"
    else:
        org = write_org(args.output, args.users, args.seed, args.org)
        what = f"{org.users} users, {org.numbers} numbers, {org.seats} seats per pool"
    print(f"{args.output}: {what} in {time.perf_counter() - start:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
