"""The diff: validated rows + an org snapshot → operations (SPEC section 6). Pure: no I/O.

Every step is a column expression over the whole file. The only per-row Python is building
the JSON-able payload (``attributes`` / ``changes``) of the operations that exist, which the
plan file needs anyway.

Order of work: classify rows (new, claim, existing, delete), run the row-local org rules of
``rules``, then the whole-plan rules of ``accounting`` (numbers, extensions, seats, last
admin) on the rows still valid, repeated until no further row is rejected (a rejected row
neither frees nor takes anything), and finally emit the operations of the surviving rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import jsontext, textviews
from csvimport.beside import beside, worker
from csvimport.catalog import Catalog
from csvimport.issues import IssueBuilder, concat_issues
from csvimport.masks import arrow_text, filled, is_false, is_true, member, text_buffer
from csvimport.model import (
    OPERATION_KINDS,
    PLAN_COLUMNS,
    Mode,
    Plan,
    empty_operations,
    issues_frame,
)
from csvimport.requirements import KEPT_AFTER, align_current, delete_rows, user_positions
from csvimport.store.snapshot import OrgSnapshot
from csvimport.store.snapshot import run_positions as _run_positions
from csvimport.validate import Requirements, Validated, compact_phone

BOOL_TEXT = {True: "TRUE", False: "FALSE"}
MAX_PASSES = 6
# The columns of the org's users (not of the file's rows) that planning reads: numbers,
# extensions, seats and administrators are counted over the whole org.
ORG_USER_COLUMNS = ("phone_number", "extension", "location", "role", "package")
# The columns of the validated "after the row" view that planning reads.
AFTER_COLUMNS = KEPT_AFTER
# The kinds of license operations, as the categories of ``Rows.license_ops["op"]``.
OP_KINDS = pd.CategoricalDtype(["remove_license", "assign_license"])


@dataclass
class Rows:
    """The planning view of the file: one entry per row, aligned on the row number."""

    v: Validated
    snap: OrgSnapshot
    cat: Catalog
    mode: Mode
    cur: pd.DataFrame  # the current user per row (NaN where the user is new)
    exists: pd.Series
    deleting: pd.Series
    claim: pd.Series
    add: pd.Series
    other_org: pd.Series
    values: pd.DataFrame  # the row's non-blank cells, normalised as they would be stored
    license_ops: pd.DataFrame  # row, license, op ("assign_license" / "remove_license")
    holdings: dict[str, np.ndarray] = field(default_factory=dict)  # license -> row holds it

    @property
    def index(self) -> pd.Index:
        return self.v.cells.index

    def subscription_of(self, license_id: str) -> str | None:
        col = self.v.table.column_for(license_id)
        return col.subscription if col is not None else None


def normalise_phone(values: pd.Series) -> pd.Series:
    return compact_phone(values.astype("str"))


def _values(v: Validated, snap: OrgSnapshot, cat: Catalog) -> pd.DataFrame:
    """The row's cells as they would be stored: phones compact, booleans TRUE/FALSE, names of
    locations and sites in the org's own spelling."""
    out = pd.DataFrame(index=v.cells.index)
    spelling = {
        "location": {n.casefold(): n for n in snap.locations},
        "preferred_site": {n.casefold(): n for n in snap.sites},
    }
    for fid in v.cells.columns:
        text = v.cells[fid].astype(str)
        ftype = cat.fields[fid].type
        if ftype == "phone":
            text = normalise_phone(text)
        elif ftype == "boolean" and fid in v.flags:
            text = v.flags[fid].map(BOOL_TEXT).fillna("").astype(str)
        elif fid in spelling:
            text = per_distinct(text, _spelled(spelling[fid]))
        out[fid] = text.astype("str")
    return out


def _spelled(names: dict[str, str]) -> Callable[[str], str]:
    """A name as the org spells it (matched case-insensitively), else as given."""
    return lambda text: names.get(text.casefold(), text)


def per_distinct(values: pd.Series, fn: Callable[[str], str]) -> pd.Series:
    """``fn`` of each text, computed once per distinct value and spread by the codes: for
    columns of few distinct values (locations, sites), whatever their length. Missing values
    become ""."""
    codes, distinct = pd.factorize(values.astype("str"))
    lookup = pd.array([fn(str(d)) for d in distinct] + [""], dtype="str")
    return pd.Series(lookup.take(codes), index=values.index, dtype="str")


def classify(v: Validated, snap: OrgSnapshot, cat: Catalog, mode: Mode) -> Rows:
    """Who each row is about, and what it would do to the user's licenses."""
    rows, at = _who(v, snap, cat, mode)
    _licensing(rows, at)
    return rows


def _licensing(rows: Rows, at: np.ndarray) -> None:
    """What each row would do to its user's licenses (``rows.holdings`` and
    ``rows.license_ops``); ``at``: each row's user position (-1: none). Apart from ``_who``
    so that ``make_plan`` runs it beside the payloads, which never read it."""
    rows.holdings = _holdings(np.where(rows.exists.to_numpy(), at, -1), rows.snap)
    rows.license_ops = _license_ops(rows)


def _who(v: Validated, snap: OrgSnapshot, cat: Catalog, mode: Mode) -> tuple[Rows, np.ndarray]:
    """Who each row is about (its user, added, claimed or deleted) and its cells as they would
    be stored, without the licenses (``_licensing``); and each row's user position."""
    key = v.email_key
    index = v.cells.index
    at = v.current_at
    if at is None:  # validated without the org's users: find them here
        at = user_positions(snap.users, key)
    cur = v.current
    if cur is None:
        cur = align_current(snap.users, key, index, at)
        assert cur is not None
    exists = pd.Series((at >= 0) & (key != "").to_numpy(), index=index)
    all_false = delete_rows(v.flags, cat, v.cells.index)
    deleting = all_false & (mode == "add-remove")
    free = pd.Series(member(key, snap.free_accounts), index=index) & ~exists
    other = pd.Series(member(key, snap.other_org_emails), index=index) & ~exists & ~free
    new = ~exists & ~all_false & ~other & (key != "")
    rows = Rows(
        v=v,
        snap=snap,
        cat=cat,
        mode=mode,
        cur=cur,
        exists=exists,
        deleting=deleting,
        claim=new & free,
        add=new & ~free,
        other_org=other,
        values=_values(v, snap, cat),
        license_ops=pd.DataFrame(),
    )
    return rows, at


def held(rows: Rows, license_id: str) -> pd.Series:
    """Whether each row's user holds ``license_id`` now (package or license)."""
    if license_id in rows.cat.packages:
        return (rows.cur["package"] == license_id).fillna(False).astype(bool)
    mask = rows.holdings.get(license_id)
    if mask is None:
        mask = np.zeros(len(rows.index), dtype=bool)
    return pd.Series(mask, index=rows.index)


def _holdings(at: np.ndarray, snap: OrgSnapshot) -> dict[str, np.ndarray]:
    """Per license, which rows' users hold it now. ``at``: each row's user position in
    ``snap.users`` (-1: none). The org's license rows are located among the users by the
    positions the snapshot carries (found when it was read from the tables, or stored in
    its cache), else by one Arrow hash lookup; the licenses are dictionary-encoded in Arrow
    (no Python string per license row)."""
    licenses = snap.licenses
    if licenses.empty or not len(at):
        return {}
    holder_at = snap.license_holders()
    if holder_at is None:  # a snapshot made without them, or its frames replaced since
        holder_at = _run_positions(arrow_text(licenses["email"]), arrow_text(snap.users.index))
    coded = pc.dictionary_encode(arrow_text(licenses["license"]))
    codes = coded.indices.to_numpy(zero_copy_only=False)
    found = at >= 0
    safe = np.where(found, at, 0)
    known = holder_at >= 0
    out: dict[str, np.ndarray] = {}
    for code, name in enumerate(coded.dictionary.to_pylist()):
        holds = np.zeros(len(snap.users) + 1, dtype=bool)
        holds[holder_at[(codes == code) & known]] = True
        out[str(name)] = holds[safe] & found
    return out


def _license_ops(rows: Rows) -> pd.DataFrame:
    """Assignments and removals each row asks for, before any rule rejects a row.

    ``license`` and ``op`` are categoricals (license categories sorted by name): the sort,
    the pair matching and the rules compare integer codes, not a string per operation.
    Assembled as NumPy columns (``_LicenseOps``) and made a frame once: a frame per kind,
    concatenated and sorted by pandas, cost ~0.3 s at a million rows."""
    live = (~rows.deleting & (rows.exists | rows.claim | rows.add)).to_numpy()
    held_now, held_names = _package_codes(rows.cur["package"])
    given, given_names = _package_codes(rows.v.row_package)
    ids = _license_ids(rows, held_names + given_names)
    # the packages as codes of ``ids`` (-1: none), aligned on the rows
    cur_pkg = _recoded(held_now, held_names, ids)
    target = _recoded(given, given_names, ids)
    row = rows.index.to_numpy(dtype=np.int64)

    def ops(mask: np.ndarray, license: np.ndarray | str, op: str, order: int) -> _LicenseOps:
        return _LicenseOps.of(row, mask, license, op, order, ids)

    parts: list[_LicenseOps] = []
    moving = live & (target >= 0) & (target != cur_pkg)
    parts.append(ops(moving & (cur_pkg >= 0), cur_pkg, "remove_license", 0))
    parts.append(ops(moving, target, "assign_license", 2))
    if rows.mode == "add-remove":
        dropped = np.zeros(len(row), dtype=bool)
        for pid, flag in rows.v.flags.items():
            if pid in rows.cat.packages:
                dropped |= (cur_pkg == ids.categories.get_loc(pid)) & is_false(flag).to_numpy()
        parts.append(ops(live & dropped & (target < 0), cur_pkg, "remove_license", 0))
    for lic in rows.cat.licenses:
        if lic not in rows.v.flags:
            continue
        flag = rows.v.flags[lic]
        has = held(rows, lic).to_numpy()
        parts.append(ops(live & is_true(flag).to_numpy() & ~has, lic, "assign_license", 3))
        if rows.mode == "add-remove":
            parts.append(ops(live & is_false(flag).to_numpy() & has, lic, "remove_license", 1))
    chosen = _LicenseOps.joined(parts)
    if rows.mode == "add-only":
        newcomers = (rows.add | rows.claim).to_numpy()
        defaults = rows.snap.settings.default_licenses
        extra = _LicenseOps.joined([ops(newcomers, lic, "assign_license", 3) for lic in defaults])
        chosen = _LicenseOps.joined([chosen, extra.unpaired(chosen, len(ids.categories))])
    return chosen.sorted().frame(ids)


@dataclass
class _LicenseOps:
    """License operations as NumPy columns: row numbers, license codes (in the sorted
    license ids), kind codes (``OP_KINDS``) and order within a row."""

    row: np.ndarray
    license: np.ndarray
    op: np.ndarray
    order: np.ndarray

    @classmethod
    def of(
        cls,
        rows: np.ndarray,
        mask: np.ndarray,
        license: np.ndarray | str,
        op: str,
        order: int,
        ids: pd.CategoricalDtype,
    ) -> _LicenseOps:
        """One kind of operation for the ``rows`` of ``mask`` (``license``: one id, or each
        row's code in ``ids``)."""
        n = int(mask.sum())
        if isinstance(license, str):
            codes = np.full(n, ids.categories.get_loc(license), dtype=_CODE)
        else:
            codes = license[mask].astype(_CODE)
        kind = np.full(n, OP_KINDS.categories.get_loc(op), dtype=np.int8)
        return cls(rows[mask], codes, kind, np.full(n, order, dtype=np.int8))

    @classmethod
    def joined(cls, parts: list[_LicenseOps]) -> _LicenseOps:
        if not parts:
            return cls(*(np.zeros(0, dtype=t) for t in (np.int64, _CODE, np.int8, np.int8)))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _LICENSE_OP_FIELDS))

    def unpaired(self, chosen: _LicenseOps, licenses: int) -> _LicenseOps:
        """add-only defaults: the (row, license) pairs of these operations that ``chosen``
        lacks (a new or claimed user gets the org's default basic licenses its row does not
        assign)."""
        if not len(self.row) or not len(chosen.row):
            return self
        width = licenses + 1
        mine = self.row * width + self.license.astype(np.int64)
        keep = ~np.isin(mine, chosen.row * width + chosen.license.astype(np.int64))
        return self.taken(keep)

    def sorted(self) -> _LicenseOps:
        """By row, then order, then license name (stable; the license codes are ranks by
        name)."""
        return self.taken(_sorted_by([self.row, self.order, self.license]))

    def taken(self, at: np.ndarray) -> _LicenseOps:
        return _LicenseOps(*(getattr(self, f)[at] for f in _LICENSE_OP_FIELDS))

    def frame(self, ids: pd.CategoricalDtype) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "row": self.row,
                "license": pd.Categorical.from_codes(self.license, dtype=ids),
                "op": pd.Categorical.from_codes(self.op, dtype=OP_KINDS),
                "order": self.order.astype(np.int64),
            }
        )


_LICENSE_OP_FIELDS = ("row", "license", "op", "order")
_CODE = np.int16  # a license code: the catalogue's ids and the org's, a few dozen


def _license_ids(rows: Rows, packages: list[str]) -> pd.CategoricalDtype:
    """Every license id an operation can name, sorted: the catalogue's, the org's defaults
    and the ``packages`` the users hold now or the file gives (one may have left the
    catalogue)."""
    names = {*rows.cat.packages, *rows.cat.licenses, *rows.snap.settings.default_licenses}
    names |= set(packages)
    names.discard("")
    return pd.CategoricalDtype(sorted(names))


def _package_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """A package column as integer codes into its distinct names (-1: blank or missing):
    the package comparisons of a million rows then compare integers, after one hash pass,
    where comparing the text columns took several."""
    codes, distinct = pd.factorize(values)
    names = [str(v) for v in distinct]
    if "" in names:
        codes = np.where(codes == names.index(""), -1, codes)
    return np.asarray(codes, dtype=np.int64), names


def _recoded(codes: np.ndarray, names: list[str], ids: pd.CategoricalDtype) -> np.ndarray:
    """Codes into ``names`` as codes into ``ids`` (-1 stays -1)."""
    lookup = np.append(ids.categories.get_indexer(pd.Index(names, dtype=object)), -1)
    return np.asarray(lookup[codes], dtype=np.int64)


def _literals(rows: Rows, fid: str, values: pa.Array, prefix: jsontext.Prefix = "") -> pa.Array:
    """``prefix`` and the JSON literal of each of one field's stored texts: booleans typed,
    blank as null (no prefix either)."""
    if rows.cat.fields[fid].type == "boolean":
        if isinstance(prefix, str):
            return jsontext.boolean_literals(values, prefix)
        return jsontext.concat(prefix, jsontext.boolean_literals(values))
    blank = filled(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)
    text = jsontext.escaped(pc.fill_null(values, ""))
    return jsontext.concat(prefix, '"', jsontext.null_where(text, blank), '"')


def _present(rows: Rows, fid: str, values: pa.Array) -> np.ndarray:
    """Which of one field's stored texts make a member (``_literals`` not null)."""
    if rows.cat.fields[fid].type == "boolean":
        kept = pc.or_(pc.equal(values, "TRUE"), pc.equal(values, "FALSE"))
    else:
        kept = pc.not_equal(values, "")
    return np.asarray(filled(kept, False).to_numpy(zero_copy_only=False), dtype=bool)


def _old_text(rows: Rows, fid: str) -> pa.Array:
    """The user's current value of ``fid`` per row, as ``values`` would hold it (null or ""
    where none: nulls are only filled in once the changed rows are picked, since
    ``fill_null`` copies a million-row text column)."""
    if rows.cat.fields[fid].type == "phone":
        return arrow_text(normalise_phone(rows.cur[fid].fillna("")))
    return arrow_text(rows.cur[fid])


@dataclass
class Changes:
    """``changes`` payloads: ``rows`` marks the rows that change something (over the file's
    rows), ``payload`` holds theirs in row order."""

    rows: np.ndarray
    payload: pa.Array


def _changes(rows: Rows, existing: np.ndarray) -> Changes:
    """The ``{"changes": {...}}`` payload of each row that changes something: a
    ``"field": {"from", "to"}`` member for each non-blank cell that differs from the stored
    value. Built over the changing rows only, and each field keeps only its changed cells
    while the others are compared (a million-row column per field held until the join
    was ~0.4 GB at the plan's memory peak)."""
    changed: list[tuple[str, np.ndarray, pa.Array, pa.Array]] = []
    for fid in rows.values.columns:
        if fid == "email" or fid not in rows.cur:
            continue
        new, old = arrow_text(rows.values[fid]), _old_text(rows, fid)
        # no stored value (null) differs from any non-blank cell
        differs = pc.and_(pc.not_equal(new, ""), filled(pc.not_equal(new, old), True))
        mask = existing & filled(differs, False).to_numpy(zero_copy_only=False)
        if mask.any():
            at = pa.array(mask)
            changed.append((fid, mask, new.filter(at), pc.fill_null(old.filter(at), "")))
    touched = np.zeros(len(rows.index), dtype=bool)
    for _fid, mask, _new, _old in changed:
        touched |= mask
    n = int(touched.sum())
    fields = [
        (fid, mask[touched], _change_builder(rows, fid, new, old, mask[touched]))
        for fid, mask, new, old in changed
    ]
    if not fields:
        return Changes(touched, pa.array([], type=jsontext.TEXT))
    payload, _present = jsontext.object_rows('{"changes": {', "}}", n, fields)
    return Changes(touched, payload)


def _change_builder(
    rows: Rows, fid: str, new: pa.Array, old: pa.Array, mask: np.ndarray
) -> jsontext.Builder:
    """``{"from": old, "to": new}`` after the prefix, on the rows of ``mask`` (``new`` and
    ``old`` hold those rows' values only)."""
    at = pa.array(mask)

    def build(prefix: jsontext.Prefix) -> pa.Array:
        to = _literals(rows, fid, new)
        frm = pc.fill_null(_literals(rows, fid, old), "null")
        head = prefix.filter(at) if isinstance(prefix, pa.Array) else prefix
        frag = jsontext.concat(head, '{"from": ', frm, ', "to": ', to, "}")
        return pc.replace_with_mask(pa.nulls(len(mask), jsontext.TEXT), at, frag)

    return build


@dataclass
class _Block:
    """Operations of one kind, as columns: row numbers, kind(s) and license(s) as codes into
    ``PLAN_KINDS`` and the license ids (-1: none), order within a row, and where each payload
    is among the candidate payloads (-1: none)."""

    row: np.ndarray
    op: np.ndarray
    license: np.ndarray
    order: np.ndarray
    payload: np.ndarray


def _block(
    idx: pd.Index,
    op: str | np.ndarray,
    payload: np.ndarray | None = None,
    license: np.ndarray | None = None,
    order: pd.Series | int = -1,
) -> _Block:
    n = len(idx)
    return _Block(
        row=idx.to_numpy(dtype=np.int64),
        op=np.full(n, PLAN_KINDS.categories.get_loc(op)) if isinstance(op, str) else op,
        license=np.full(n, -1) if license is None else license,
        order=np.full(n, order) if isinstance(order, int) else order.to_numpy(dtype=np.int64),
        payload=np.full(n, -1, dtype=np.int64) if payload is None else payload,
    )


@dataclass
class Payloads:
    """The JSON payloads of every row that may get a user operation, made before the rules
    decide which rows are valid (``candidate_payloads``): ``add_user`` / ``claim_user`` hold
    the attributes of the rows of that mask, in row order; ``changes`` those of the
    existing users' rows that change something."""

    attributes: dict[str, pa.Array]
    changes: Changes

    def texts(self) -> list[pa.Array]:
        """Every candidate payload: the ``add_user`` ones, the ``claim_user`` ones, then the
        ``changes``; an operation names its payload by its position in this sequence."""
        parts = [self.attributes["add_user"], self.attributes["claim_user"], self.changes.payload]
        return [part.cast(jsontext.TEXT) for part in parts]

    def starts(self) -> dict[str, int]:
        """Where each kind's payloads begin in ``texts``."""
        add, claim = len(self.attributes["add_user"]), len(self.attributes["claim_user"])
        return {"add_user": 0, "claim_user": add, "modify_user": add + claim}

    def release(self) -> None:
        """Drop the payloads (the plan's data column holds the kept ones)."""
        self.attributes = {op: pa.nulls(0, jsontext.TEXT) for op in self.attributes}
        self.changes = Changes(self.changes.rows, pa.nulls(0, jsontext.TEXT))


def candidate_payloads(rows: Rows) -> Payloads:
    """Payloads for every candidate row: pure Arrow work over columns the rules never
    change, so ``make_plan`` runs it beside the rules on the second core."""
    masks = {"add_user": rows.add, "claim_user": rows.claim}
    existing = (rows.exists & ~rows.deleting).to_numpy()
    return Payloads(
        attributes={op: _attributes(rows, mask.to_numpy()) for op, mask in masks.items()},
        changes=_changes(rows, existing),
    )


def operations(rows: Rows, valid: pd.Index, payloads: Payloads) -> pd.DataFrame:
    """The plan's operations for the ``valid`` rows, in file order (user op, then licenses).

    Built as column blocks, ordered once by a NumPy stable sort and gathered once: no frame
    per kind, no concatenated copy. Text columns stay Arrow-backed (``email``, ``data``): a
    million-row plan holds millions of operations, and a Python string per cell would double
    the plan's memory. ``payloads``: ``candidate_payloads`` of ``rows``."""
    ok = pd.Series(rows.index.isin(valid), index=rows.index)
    start = payloads.starts()
    blocks: list[_Block] = []
    for mask, op in ((rows.add, "add_user"), (rows.claim, "claim_user")):
        candidate = mask.to_numpy()
        keep = ok.to_numpy()[candidate]
        kept = np.flatnonzero(keep) + start[op]
        blocks.append(_block(rows.index[candidate][keep], op, kept))
    deleted = rows.index[(rows.deleting & rows.exists & ok).to_numpy()]
    blocks.append(_block(deleted, "delete_user"))
    blocks.append(_modify_ops(rows, ok, payloads.changes, start["modify_user"]))
    lic = rows.license_ops[rows.license_ops["row"].isin(valid)]
    ids = pd.CategoricalDtype(lic["license"].cat.categories)
    blocks.append(_license_block(lic))
    blocks = [b for b in blocks if len(b.row)]
    if not blocks:
        return empty_operations()
    row = np.concatenate([b.row for b in blocks])
    at = _sorted_by([row, np.concatenate([b.order for b in blocks])])
    kinds = np.concatenate([b.op for b in blocks])[at]
    licenses = np.concatenate([b.license for b in blocks])[at]
    row = row[at]
    # The emails (an Arrow take, outside the GIL) are gathered beside the payloads' views:
    # the job's memory peak is earlier, in the rules' window, and stays there.
    with beside(_emails_at, rows, row) as emails:
        data = _payloads_in_order(payloads, np.concatenate([b.payload for b in blocks])[at])
        email = emails.result()
    return pd.DataFrame(
        {
            # Categoricals: one code per operation, no Python string or hash per cell for
            # the writer and the counts.
            "op": pd.Categorical.from_codes(kinds, dtype=PLAN_KINDS),
            "row": row,
            "email": email,
            "license": pd.Categorical.from_codes(licenses, dtype=ids),
            "data": _text_column(data),
        },
        columns=PLAN_COLUMNS,
    )


# The plan's ``op`` column; and each license operation kind (``OP_KINDS``) as its code there.
PLAN_KINDS = pd.CategoricalDtype(list(OPERATION_KINDS))
_PLAN_KIND_OF_LICENSE_OP = PLAN_KINDS.categories.get_indexer(OP_KINDS.categories)


def _license_block(lic: pd.DataFrame) -> _Block:
    """The license operations ``lic`` (a frame of ``_license_ops``) as a block."""
    if not len(lic):
        return _block(pd.Index([], dtype=np.int64), np.zeros(0, dtype=np.int64))
    kind = _PLAN_KIND_OF_LICENSE_OP[np.asarray(lic["op"].cat.codes.to_numpy(), dtype=np.int64)]
    codes = np.asarray(lic["license"].cat.codes.to_numpy(), dtype=np.int64)
    return _block(pd.Index(lic["row"]), kind, None, codes, lic["order"])


def _sorted_by(keys: list[np.ndarray]) -> np.ndarray:
    """Positions that sort by the integer ``keys``, the first the most significant (stable).

    The keys are packed into one integer and sorted once, stable: the planner's keys come
    in a few runs that are sorted already (one per kind of operation), which the stable sort
    merges, where ``lexsort`` sorted millions of operations once per key (2M operations:
    0.07 s -> 0.03 s). ``lexsort`` remains for keys too wide to pack."""
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    width = 1
    for key in keys:
        low, span = int(key.min()), int(key.max()) - int(key.min()) + 1
        width *= span
        if width >= 2**62:
            return np.lexsort(tuple(reversed(keys)))
        packed = packed * span + (key.astype(np.int64) - low)
    return np.argsort(packed, kind="stable")


def _text_column(data: pa.Array) -> pd.Series:
    """The plan's ``data`` column: views (``textviews``) as they are, text as ``str``."""
    if data.type == pa.string_view():
        return pd.Series(pd.arrays.ArrowExtensionArray(data))
    return pd.Series(data.to_pandas().array, dtype="str")


def _payloads_in_order(payloads: Payloads, source: np.ndarray) -> pa.Array:
    """The ``data`` column in plan order: ``source`` names each operation's payload among
    ``payloads.texts()`` (-1: none), in plan order.

    Only user operations carry a payload; the license operations, two thirds of a big plan,
    carry none. The column is made of views into the candidates' bytes (``textviews``): no
    copy of them at the plan's memory peak. Else the kept payloads alone are gathered, in
    one take over the candidates as chunks (no filtered or concatenated copy first), the
    candidates are dropped, and the column is assembled around the gathered bytes from
    buffers: offsets that stand still where an operation has no payload, and a validity
    bitmap."""
    parts = payloads.texts()
    payloads.release()
    views = textviews.gathered(parts, source)
    if views is not None:
        return views
    has = source >= 0
    texts = pa.chunked_array(parts, jsontext.TEXT)
    del parts
    carried = texts.take(pa.array(source[has])).combine_chunks()
    del texts
    lengths = np.zeros(len(source), dtype=np.int64)
    lengths[has] = pc.binary_length(carried).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    validity = pa.array(has).buffers()[1]
    return pa.LargeStringArray.from_buffers(
        len(source), pa.py_buffer(offsets), text_buffer(carried), validity
    )


def _emails_at(rows: Rows, row_numbers: np.ndarray) -> pd.Series:
    """The email cell of each given row, as an Arrow-backed text column."""
    if "email" not in rows.v.cells:
        return pd.Series("", index=range(len(row_numbers)), dtype="str")
    cells = arrow_text(rows.v.cells["email"])
    index = rows.index
    if index.is_monotonic_increasing:  # rows in file order: a binary search, no hash table
        at = np.searchsorted(index.to_numpy(dtype=np.int64), row_numbers)
    else:
        at = index.get_indexer(pd.Index(row_numbers))
    return pd.Series(cells.take(pa.array(at)).to_pandas(), dtype="str")


def _attributes(rows: Rows, take: np.ndarray) -> pa.Array:
    """The ``{"attributes": {...}}`` payloads of the rows in ``take`` (new or claimed
    users): their non-blank cells, booleans typed. Built ``_ROWS_AT_ONCE`` rows at a time:
    every field's literals are held until the join, about the payloads' size again."""
    positions = np.flatnonzero(take)
    columns = {fid: arrow_text(rows.values[fid]) for fid in rows.values.columns}
    pieces = [
        _attributes_of(rows, columns, positions[start : start + _ROWS_AT_ONCE])
        for start in range(0, len(positions), _ROWS_AT_ONCE)
    ]
    if not pieces:
        return pa.array([], type=jsontext.TEXT)
    return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)


_ROWS_AT_ONCE = 100_000


def _attributes_of(rows: Rows, columns: dict[str, pa.Array], positions: np.ndarray) -> pa.Array:
    """The attributes payloads of the rows at ``positions`` (``columns``: ``rows.values`` as
    Arrow arrays, converted once for all chunks)."""
    at = pa.array(positions)
    fields: list[tuple[str, np.ndarray, jsontext.Builder]] = []
    for fid, column in columns.items():
        values = column.take(at)
        present = _present(rows, fid, values)
        fields.append((fid, present, _literal_builder(rows, fid, values, bool(present.all()))))
    return jsontext.object_rows('{"attributes": {', "}}", len(positions), fields)[0]


def _literal_builder(rows: Rows, fid: str, values: pa.Array, everywhere: bool) -> jsontext.Builder:
    """The member of one field; as pieces when it is text present in every row (most
    attributes of new users), so the row join takes them directly."""
    plain = everywhere and rows.cat.fields[fid].type != "boolean"

    def build(prefix: jsontext.Prefix) -> jsontext.Member:
        if plain and isinstance(prefix, str):
            return jsontext.string_member(values, prefix)
        return _literals(rows, fid, values, prefix)

    return build


def _modify_ops(rows: Rows, ok: pd.Series, changes: Changes, start: int) -> _Block:
    """``modify_user`` of the valid rows that change something (their payloads begin at
    ``start`` among the candidates)."""
    keep = ok.to_numpy()[changes.rows]
    return _block(rows.index[changes.rows][keep], "modify_user", np.flatnonzero(keep) + start)


def make_plan(
    v: Validated,
    snap: OrgSnapshot,
    cat: Catalog,
    mode: Mode,
    sha256: str | None,
) -> tuple[Plan, pd.DataFrame, Rows]:
    """Org rules and the diff: the plan of the valid rows and every org-level issue."""
    from csvimport import accounting, rules

    org, version = snap.org_id, snap.state_version
    # On a second thread, one after the other: the requirement checks validation left
    # (``Validated.pending``; only the accounting waits for them), then the payloads (Arrow
    # kernels, which release the GIL). This thread meanwhile finds who each row is about,
    # the licensing and the rules; the few rows the rules reject are filtered out of the
    # payloads afterwards. One worker, not two: this thread's chain is the longer one, and
    # a third busy thread on two cores measured no faster.
    with worker() as second:
        required = second.submit(_pending_issues, v.pending)
        rows, at = _who(replace(v, pending=None), snap, cat, mode)
        building = second.submit(candidate_payloads, rows)
        _licensing(rows, at)
        del at
        email = v.cells["email"] if "email" in v.cells else pd.Series("", index=v.cells.index)
        b = IssueBuilder(v.cells, v.headers, email)
        rules.check(rows, b)
        issues = concat_issues([v.issues, required.result(), b.frame()])
        for _ in range(MAX_PASSES):
            valid = _valid_rows(rows, issues)
            extra = accounting.check(rows, valid)
            if extra.empty:
                break  # nothing new rejected: ``valid`` is final
            issues = concat_issues([issues, extra])
        else:
            valid = _valid_rows(rows, issues)
        payloads = building.result()
    del v, snap
    _let_go(rows)
    ops = operations(rows, valid, payloads)
    plan = Plan(org=org, mode=mode, state_version=version, sha256=sha256, operations=ops)
    return plan, issues, rows


def _pending_issues(pending: Requirements | None) -> pd.DataFrame:
    """The issues of the requirement checks validation left to the planner (none left: an
    empty frame)."""
    return issues_frame([]) if pending is None else pending.issues()


def _let_go(rows: Rows) -> None:
    """Drop what only the rules and payloads read (the aligned users, the stored values, the
    org's tables): assembling a million-row plan is the job's memory peak. Only ``rows``'
    own references are dropped; a caller that still holds the inputs keeps them whole."""
    rows.cur = rows.cur.iloc[:, :0]
    rows.values = rows.values.iloc[:, :0]
    rows.holdings = {}
    rows.v = replace(rows.v, current=None, current_at=None)
    snap = rows.snap
    rows.snap = replace(
        snap,
        users=snap.users.iloc[:0],
        licenses=snap.licenses.iloc[:0],
        numbers=snap.numbers.iloc[:0],
    )


def _valid_rows(rows: Rows, issues: pd.DataFrame) -> pd.Index:
    bad = issues.loc[(issues["severity"] == "error") & issues["row"].notna(), "row"].astype("int64")
    return rows.index[~rows.index.isin(np.asarray(bad))]
