"""An org's state as columns, read with a handful of bulk queries.

Planning a million-row file must not cost a million queries, so the snapshot is read with one
query per table and handed to ``plan`` as pandas frames (``plan`` never touches the database).
Text is shaped in SQL (``COALESCE``, ``CASE`` for booleans) so Python only zips columns.

Lookups across orgs (free accounts of the consumer org, emails of other customer orgs) are
limited to the file's emails when those are given: fetch-all-and-intersect when the other orgs
are small, chunked ``IN`` lists otherwise.

The users, licenses and numbers of an org at a given ``state_version`` are cached in the
database as one Arrow blob (``snapcache``): the statement that reads the org's settings also
brings the blob stored for its current version, if any, and the big selects are skipped. A
miss reads the tables and stores the blob, best effort. ``CSVIMPORT_SNAPSHOT_CACHE=off``
turns the cache off.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Text,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.pool import QueuePool

from csvimport import arrowpool
from csvimport.masks import arrow_text, member
from csvimport.model import StaleOrBusy
from csvimport.store import snapcache
from csvimport.store.arrowfetch import fetch_frame
from csvimport.store.db import transaction
from csvimport.store.models import (
    BOOL_FIELDS,
    USER_FIELDS,
    Location,
    Number,
    Org,
    Pool,
    Site,
    User,
    UserLicense,
)

USER_COLUMNS = (*USER_FIELDS, "role", "package")
_EXTRA = "__extra__"
_IN_CHUNK = 5_000
_ATTEMPTS = 3

log = logging.getLogger(__name__)


class OrgNotFound(LookupError):
    """No org with that id is stored."""


@dataclass(frozen=True)
class OrgSettings:
    id: str
    name: str
    kind: str
    package: str | None
    directory_sync: bool
    integrations: tuple[str, ...]
    default_licenses: tuple[str, ...]
    verified_domains: tuple[str, ...]
    claimed_domains: tuple[str, ...]
    trial: bool
    state_version: int


@dataclass
class OrgSnapshot:
    """One org as ``plan`` needs it. Every text cell is ``str`` ("" for none).

    - ``users``: index ``email`` (lowercase); columns ``USER_COLUMNS``: the 16 field ids
      (``email`` as the admin spelled it; ``jabber_*`` as "TRUE"/"FALSE"/""), ``role``,
      ``package`` ("" for none), plus any catalogue field kept in ``extra``.
    - ``licenses``: columns ``email`` (lowercase), ``license`` — basic and product licenses;
      a user's package is ``users.package``.
    - ``pools``: ``id`` (int), ``license``, ``quantity`` (float, NaN = unlimited), ``status``,
      ``order``, ``subscription`` (str, "" for none), ``used`` (int: users of the org holding
      that license, the same figure on every pool of a license).
    - ``numbers``: ``number`` (E.164), ``location``, ``email`` (lowercase holder, "" when free).

    ``license_holders()``: per license row, its user's position in ``users`` (int32, -1 when
    the user is absent), when known. ``load_snapshot`` finds them once, with the frames it
    reads from the tables, and the snapshot cache stores them, so that planning a warm org
    hashes no email of its licenses. They are kept beside the frames (not as a column of
    ``licenses``, whose readers see ``email`` and ``license`` only) and are bound to the very
    ``users`` index and ``licenses`` frame they were found for: ``dataclasses.replace``
    does not carry them (a field outside ``__init__``), and a snapshot whose ``users`` or
    ``licenses`` was swapped for another frame (filtered, reordered, emptied) answers None,
    so that a caller looks them up again rather than read stale positions.
    """

    settings: OrgSettings
    users: pd.DataFrame
    licenses: pd.DataFrame
    pools: pd.DataFrame
    numbers: pd.DataFrame
    locations: frozenset[str]
    sites: frozenset[str]
    free_accounts: frozenset[str] = field(default_factory=frozenset)
    other_org_emails: frozenset[str] = field(default_factory=frozenset)
    _holders: _Holders | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def org_id(self) -> str:
        return self.settings.id

    @property
    def state_version(self) -> int:
        return self.settings.state_version

    def narrowed(self, columns: Sequence[str]) -> OrgSnapshot:
        """The same snapshot with only ``columns`` of its users: once the users are aligned
        on the file's rows, the whole-plan rules read a handful of columns, and the others
        of a million-user org are ~300 MB."""
        keep = [c for c in self.users.columns if c in columns]
        out = replace(self, users=self.users[keep])
        holders = self.license_holders()
        if holders is not None:  # the same users in the same order: still their positions
            out._holders = _Holders.of(holders, out)
        return out

    def carry_holders(self, positions: np.ndarray) -> None:
        """Keep ``positions`` (see ``license_holders``) for the current ``users`` and
        ``licenses``; ValueError when they cannot be positions of those frames."""
        if not snapcache.positions_fit(positions, len(self.users), len(self.licenses)):
            raise ValueError("not one int32 position in the users (or -1) per license row")
        self._holders = _Holders.of(positions, self)

    def license_holders(self) -> np.ndarray | None:
        """Per license row, its user's position in ``users`` (-1: none), or None when they
        are not known for these very frames (see the class docstring)."""
        h = self._holders
        return h.positions if h is not None and h.fits(self) else None


@dataclass(frozen=True)
class _Holders:
    """License rows' user positions and the frames they were found for. Identity, not
    equality, is checked (comparing a million emails would cost the lookup they spare), so
    a frame changed in place keeping its identity (``licenses.sort_values(inplace=True)``)
    is not noticed: nothing does that to a snapshot. Weak references: a frame replaced on
    the snapshot is not kept alive by them."""

    positions: np.ndarray
    users: weakref.ref[pd.Index]
    licenses: weakref.ref[pd.DataFrame]

    @classmethod
    def of(cls, positions: np.ndarray, snap: OrgSnapshot) -> _Holders:
        """``positions`` bound to the snapshot's current users index and licenses frame."""
        return cls(positions, weakref.ref(snap.users.index), weakref.ref(snap.licenses))

    def fits(self, snap: OrgSnapshot) -> bool:
        """Whether the snapshot still has the very frames the positions were found for."""
        return self.users() is snap.users.index and self.licenses() is snap.licenses


def run_positions(keys: pa.Array, among: pa.Array) -> np.ndarray:
    """Each key's position in ``among`` (int32, -1: absent), looking up each run of equal
    adjacent keys once: the org's license rows come sorted by email, ~3 per user, so a third
    of the hash probes do (any order still gives the right answer, just with more probes)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    starts = np.ones(n, dtype=bool)
    if n > 1:
        same = pc.equal(keys.slice(1), keys.slice(0, n - 1))
        starts[1:] = ~np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False))
    first = np.flatnonzero(starts)
    found = pc.index_in(keys.take(pa.array(first)), value_set=among)
    at = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int32)
    return np.repeat(at, np.diff(np.append(first, n)))


def holder_positions(users: pd.DataFrame, licenses: pd.DataFrame) -> np.ndarray:
    """Per license row, its user's position in ``users`` (int32, -1: none), by lookup."""
    return run_positions(arrow_text(licenses["email"]), arrow_text(users.index))


def load_snapshot(
    engine: Engine,
    org_id: str,
    emails: pd.Series | Sequence[str] | Callable[[], pd.Series] | None = None,
) -> OrgSnapshot:
    """Read org ``org_id`` as one consistent state.

    ``emails`` (lowercase) limits the cross-org lookups (``free_accounts``,
    ``other_org_emails``) to those emails; None fetches them all.

    The big selects run on more than one connection: the users beside the licenses and
    numbers (SQLite and the Arrow kernels release the GIL: on SQLite, Arrow splits the users
    while the licenses are selected, see ``arrowfetch``), and on PostgreSQL each ADBC select
    has a connection of its own. So the org's ``state_version`` is read again once everything
    is in, and the read is repeated when it moved: every committed change of an org bumps its
    version in the same transaction, so an unchanged version means every select saw the same
    state.

    The users, licenses and numbers come from the snapshot cache when it holds the org's
    current version (``snapcache``); otherwise they are read from the tables and, once the
    version check passed, written to the cache (best effort: never an error, never a wait).
    """
    wanted = None if emails is None else _Wanted(emails)
    for _ in range(_ATTEMPTS):
        snap, cached = _read(engine, org_id, wanted)
        if not cached:
            _release_read_memory(engine)
        if _version(engine, org_id) == snap.state_version:
            if not cached and snapcache.enabled():
                frames = snapcache.Frames(
                    snap.users, snap.licenses, snap.numbers, snap.license_holders()
                )
                snapcache.write(engine, org_id, snap.state_version, frames)
                _release_read_memory(engine)  # SQLite keeps a copy of the blob it bound
            return snap
    raise StaleOrBusy(
        f"the org {org_id} changed {_ATTEMPTS} times while it was being read: try again once "
        "the other jobs on it are done"
    )


def refresh_cache(engine: Engine, org_id: str) -> None:
    """After a job changed the org (committed, job finished, lock released), read it once
    more so that the snapshot cache holds the new state: the next dry run of the org then
    reads it from one blob (1M users: ~0.5 s instead of ~3.6 s). Best effort: the job is
    done whatever happens here."""
    if not snapcache.enabled():
        return
    try:
        load_snapshot(engine, org_id)
    except Exception:  # a cache refresh never fails a finished job
        log.debug("snapshot cache refresh of org %s failed", org_id, exc_info=True)


def _release_read_memory(engine: Engine) -> None:
    """After an org was read from its tables, before the cache is encoded and the planner
    reaches the job's memory peak: hand back what the read alone needed. SQLite keeps the
    pages and sorter memory of the million-row selects in each pooled connection (~65 MB at
    1M users), so the pool's idle connections are closed (the next use opens new ones);
    and the driver's rows, freed by now, left glibc heap pages resident
    (``arrowpool.release_heap``)."""
    if engine.dialect.name == "sqlite" and isinstance(engine.pool, QueuePool):
        engine.pool.dispose()  # a file database (an in-memory one lives in its connection)
    arrowpool.release_heap()


def _read(engine: Engine, org_id: str, wanted: _Wanted | None) -> tuple[OrgSnapshot, bool]:
    """One attempt, and whether the big frames came from the cache. On a miss: the users
    here, the licenses and numbers on a second connection, then the license rows' user
    positions (one lookup, ~0.3 s at 1M users, stored in the cache with the frames)."""
    with transaction(engine, write=False) as conn:
        settings, cached = _settings(conn, org_id)
        if cached is not None:
            users, licenses, numbers = cached.users, cached.licenses, cached.numbers
            holders = cached.holders
        else:
            with ThreadPoolExecutor(max_workers=1) as pool:
                side = pool.submit(_side_tables, engine, org_id)
                users = _users(conn, org_id)
                licenses, numbers = side.result()
            holders = holder_positions(users, licenses)
        snap = OrgSnapshot(
            settings=settings,
            users=users,
            licenses=licenses,
            pools=_pools(conn, org_id, users, licenses),
            numbers=numbers,
            locations=_names(conn, select(Location.name).where(Location.org_id == org_id)),
            sites=_names(conn, select(Site.name).where(Site.org_id == org_id)),
            free_accounts=_emails_of(conn, org_id, "consumer", wanted),
            other_org_emails=_emails_of(conn, org_id, "customer", wanted),
        )
        if holders is not None:
            snap.carry_holders(holders)
        return snap, cached is not None


def _version(engine: Engine, org_id: str) -> int | None:
    with transaction(engine, write=False) as conn:
        return conn.execute(select(Org.state_version).where(Org.id == org_id)).scalar()


def _side_tables(engine: Engine, org_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The org's user licenses and its numbers, read in a transaction of their own."""
    with transaction(engine, write=False) as conn:
        licenses = _frame(
            conn,
            select(UserLicense.email, UserLicense.license)
            .where(UserLicense.org_id == org_id)
            .order_by(UserLicense.email, UserLicense.license),
        )
        numbers = _frame(
            conn,
            select(Number.number, _text(Number.location), _text(Number.email))
            .where(Number.org_id == org_id)
            .order_by(Number.number),
        )
        return licenses, numbers


class _Wanted:
    """The file's emails, made distinct only if some other org holds users at all: an org
    alone in its database (the common case) spares the de-duplication of a million emails."""

    def __init__(self, emails: pd.Series | Sequence[str] | Callable[[], pd.Series]) -> None:
        self.emails = emails
        self._distinct: pd.Series | None = None

    @property
    def distinct(self) -> pd.Series:
        """The distinct non-blank emails (``emails`` may be a function that computes them:
        lowercasing a million cells is then only done when some other org has users)."""
        if self._distinct is None:
            emails = self.emails() if callable(self.emails) else self.emails
            found = pc.unique(arrow_text(emails))
            found = found.filter(pc.fill_null(pc.not_equal(found, ""), False))
            self._distinct = pd.Series(found.to_pandas().array, dtype="str")
        return self._distinct


def _text(column: Any, name: str | None = None) -> ColumnElement[str]:
    return func.coalesce(column, _EMPTY).label(name or column.key)


def _bool_text(column: Any) -> ColumnElement[str]:
    return case((column.is_(True), _TRUE), (column.is_(False), _FALSE), else_=_EMPTY).label(
        column.key
    )


# The texts the selects put in place of NULL and booleans, as SQL literals, not bound
# parameters: SQLite copies a bound value into its register on every row, a literal once per
# statement (a 1M-user org's users select: 1.97 s with 22 bound '' and 'TRUE', 1.55 s without).
_EMPTY = literal_column("''", Text)
_TRUE = literal_column("'TRUE'", Text)
_FALSE = literal_column("'FALSE'", Text)


def _frame(conn: Connection, stmt: Any, index: str | None = None) -> pd.DataFrame:
    """A frame of text columns from a select of text expressions.

    Rows come straight from the DBAPI cursor (SQLAlchemy's row objects cost as much as the
    fetch itself at a million rows, and text needs no result processing); measured at 200k
    users: 1.2 s against 2.3 s for zipping SQLAlchemy rows and 1.4 s for ``pd.read_sql``.
    """
    fast = fetch_frame(conn, stmt)
    if fast is not None:
        return fast.set_index(index) if index else fast
    result = conn.execute(stmt)
    names = list(result.keys())
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    frame = pd.DataFrame.from_records(rows, columns=names, coerce_float=False).astype("str")
    return frame.set_index(index) if index else frame


def _settings(conn: Connection, org_id: str) -> tuple[OrgSettings, snapcache.Frames | None]:
    """The org's settings and, from the same statement, its cached frames when the cache
    holds its current version (None: a miss, or the cache is off)."""
    stmt = select(Org).where(Org.id == org_id)
    use_cache = snapcache.enabled()
    org = conn.execute(snapcache.with_cached(stmt) if use_cache else stmt).first()
    if org is None:
        raise OrgNotFound(f"no org {org_id!r} is stored (load it with 'org load')")
    o = org._mapping
    blob = o["data"] if use_cache else None
    cached = None if blob is None else _fitting(snapcache.decode(blob))
    settings = OrgSettings(
        id=o["id"],
        name=o["name"],
        kind=o["kind"],
        package=o["package"],
        directory_sync=bool(o["directory_sync"]),
        integrations=tuple(o["integrations"] or ()),
        default_licenses=tuple(o["default_licenses"] or ()),
        verified_domains=tuple(o["verified_domains"] or ()),
        claimed_domains=tuple(o["claimed_domains"] or ()),
        trial=bool(o["trial"]),
        state_version=int(o["state_version"]),
    )
    return settings, cached


def _fitting(frames: snapcache.Frames | None) -> snapcache.Frames | None:
    """``frames`` if their columns are those this version reads, else None (a miss)."""
    if frames is None:
        return None
    users = list(frames.users.columns)
    if (
        users[: len(USER_COLUMNS)] != list(USER_COLUMNS)
        or frames.users.index.name != "email"
        or list(frames.licenses.columns) != ["email", "license"]
        or list(frames.numbers.columns) != ["number", "location", "email"]
    ):
        return None
    return frames


def _users(conn: Connection, org_id: str) -> pd.DataFrame:
    cols: list[ColumnElement[Any]] = [User.email.label("key")]
    for name in USER_COLUMNS:
        if name == "email":
            cols.append(User.email_display.label("email"))
        elif name in BOOL_FIELDS:
            cols.append(_bool_text(getattr(User, name)))
        else:
            cols.append(_text(getattr(User, name)))
    cols.append(func.coalesce(cast(User.extra, Text), _EMPTY).label(_EXTRA))
    stmt = select(*cols).where(User.org_id == org_id).order_by(User.email)
    users = _frame(conn, stmt, index="key")
    users.index.name = "email"
    _add_extra(users, users.pop(_EXTRA))
    return users


def _add_extra(users: pd.DataFrame, extra: pd.Series) -> None:
    """Catalogue fields without a column of their own, from ``users.extra`` (JSON, rarely
    set: it is read in the same select and parsed only where present)."""
    present = (extra != "") & (extra != "null")
    if not present.any():
        return
    parsed = {email: json.loads(text) for email, text in extra[present].items()}
    extras = {email: value for email, value in parsed.items() if value}
    keys = sorted({k for value in extras.values() for k in value})
    for key in keys:
        values = {email: str(value.get(key, "")) for email, value in extras.items()}
        users[key] = pd.Series(values, dtype="str").reindex(users.index, fill_value="")


def _pools(
    conn: Connection, org_id: str, users: pd.DataFrame, licenses: pd.DataFrame
) -> pd.DataFrame:
    stmt = (
        select(Pool.id, Pool.license, Pool.quantity, Pool.status, Pool.order_id, Pool.subscription)
        .where(Pool.org_id == org_id)
        .order_by(Pool.id)
    )
    rows = conn.execute(stmt).fetchall()
    used = users["package"].value_counts().add(licenses["license"].value_counts(), fill_value=0)
    return pd.DataFrame(
        {
            "id": pd.Series([r[0] for r in rows], dtype="int64"),
            "license": pd.Series([r[1] for r in rows], dtype="str"),
            "quantity": pd.Series(
                [float("nan") if r[2] is None else float(r[2]) for r in rows], dtype="float64"
            ),
            "status": pd.Series([r[3] for r in rows], dtype="str"),
            "order": pd.Series([r[4] or "" for r in rows], dtype="str"),
            "subscription": pd.Series([r[5] or "" for r in rows], dtype="str"),
            "used": pd.Series([int(used.get(r[1], 0)) for r in rows], dtype="int64"),
        }
    )


def _names(conn: Connection, stmt: Any) -> frozenset[str]:
    return frozenset(conn.execute(stmt).scalars())


def _emails_of(
    conn: Connection, org_id: str, kind: str, file_emails: _Wanted | None
) -> frozenset[str]:
    """Lowercase emails held by orgs of ``kind`` other than ``org_id``, within the file's.

    Whether any such org exists is asked first, and their users are selected by
    ``org_id IN (subquery)`` (the users' key starts with the org): a join filtered on
    ``org_id != X`` scanned every user of the database, ~0.7 s per kind with one 1M-user
    org and no other org at all."""
    orgs = select(Org.id).where(Org.kind == kind, Org.id != org_id)
    if conn.execute(orgs.limit(1)).first() is None:
        return frozenset()
    base = select(User.email).where(User.org_id.in_(orgs.scalar_subquery()))
    if file_emails is None:
        return frozenset(conn.execute(base).scalars())
    held = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    if held == 0:
        return frozenset()
    wanted = file_emails.distinct
    if wanted.empty:
        return frozenset()
    if held <= 4 * len(wanted):  # few: fetch them all, keep those of the file (Arrow hash)
        others = pd.Series(list(conn.execute(base).scalars()), dtype="str")
        return frozenset(others[member(others, wanted)])
    found: set[str] = set()
    for chunk in _chunks([str(e) for e in wanted], _IN_CHUNK):
        found.update(_unprepared(conn, base.where(User.email.in_(chunk))))
    return frozenset(found)


def _unprepared(conn: Connection, stmt: Select[Any]) -> list[str]:
    """The first column of ``stmt``'s rows, planned for these values every time.

    Why: psycopg prepares a statement on the server once a connection ran it five times,
    and PostgreSQL may then plan it once for all values. Files of the same length give this
    lookup the same text (one parameter per email), and after ~45 jobs a drop-folder worker's
    generic plan took ~1.5 s a lookup instead of ~15 ms (100 files of 1,000 rows into ten
    orgs: 138 s, and 49 s with nothing prepared). Preparing nothing at all slowed the
    apply's executemany (8.5-9.3 s -> 11.1-12.1 s), so only this lookup goes unprepared."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(stmt).scalars())
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute(compiled.string, compiled.params, prepare=False)
        return [row[0] for row in cursor.fetchall()]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
