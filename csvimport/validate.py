"""Row-level validation: from a ``Table`` of text to typed columns and issues.

Two layers, both vectorised over the whole file (no per-row Python):

* a pandera schema built from the catalogue checks each cell's format by its field's type
  (email syntax, phone numbers, extensions; booleans are parsed by ``_flags``); each check is
  one vectorised mask over the column, and its lazy failure cases become issues, keyed by
  the DataFrame index, which is the spreadsheet row number;
* cross-row and requirement rules (duplicates, one package, per-package required cells,
  names for calling packages) run as pandas expressions.

Requirements are checked on the user *as it would be after the row* (SPEC section 4): the
row's non-blank cells over the org's current values. The caller passes those current values
(``current``: a frame indexed by lowercase email) when it has an org; without one, every row
is checked on its own cells. This module never touches the database.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from csvimport import requirements
from csvimport.beside import beside
from csvimport.catalog import Catalog
from csvimport.issues import (
    IssueBuilder,
    codes_of,
    concat_issues,
    duplicate_codes,
    duplicate_rows,
    key_codes,
)
from csvimport.masks import (
    arrow_text,
    byte_bits,
    byte_lengths,
    filled_cells,
    first_bytes,
    fullmatch_where,
    is_true,
)
from csvimport.model import ISSUE_COLUMNS, Mode, Table

# Email: dot-atom local part (checked for <= 64 characters apart), a dotted host name.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+"
PHONE_SEPARATORS = r"[\s\-.()\[\]/]"
E164_RE = r"\+\d{8,15}"
EXTENSION_RE = r"\d{2,10}"
# What Excel does to a long number: scientific notation, or a float with a fraction.
MANGLED_RE = r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+|\d+[.,]\d+"

FIX = {
    "invalid_email": "enter an address like name@company.com (at most 64 characters before @)",
    "invalid_boolean": "enter TRUE or FALSE (or leave the cell blank for no change)",
    "invalid_phone": "enter the number in E.164 form, e.g. +4930123456 (+ and 8 to 15 digits)",
    "invalid_extension": "enter 2 to 10 digits, e.g. 1001",
    "number_mangled": "format the column as Text in the spreadsheet and type the number again",
}


@dataclass
class Validated:
    """What validation hands to the planner.

    ``cells``: the row's text by field id (only the fields the file has), index = row number.
    ``email_key``: lowercase email per row. ``flags``: nullable booleans per package and
    license id present in the file. ``row_package``: the package the row sets TRUE ("" when
    none, the first one when several). ``after``: the columns of the "after the row" view
    that the planner reads (``requirements.KEPT_AFTER``: ``location``, ``package``).
    """

    table: Table
    cells: pd.DataFrame
    email_key: pd.Series
    flags: dict[str, pd.Series]
    row_package: pd.Series
    after: pd.DataFrame
    issues: pd.DataFrame
    headers: dict[str, str] = field(default_factory=dict)
    current: pd.DataFrame | None = None  # the org's users aligned on the rows (None: no org)
    # Per row, the position of its user in the org's users (-1: new); None without an org.
    current_at: np.ndarray | None = None
    # The requirement checks when left to the planner (``validate(..., defer=True)``): their
    # issues are then not in ``issues`` yet. None: they ran, and ``issues`` holds them.
    pending: Requirements | None = None


@dataclass
class Requirements:
    """The requirement checks of a validation, not run yet (``requirements.check`` over the
    after-the-row view). The planner runs them beside its first steps, which do not need
    them: ~0.3 s of a million-row job on the second core instead of on the only busy one."""

    view: requirements.AfterView
    cells: pd.DataFrame
    flags: dict[str, pd.Series]
    catalog: Catalog
    mode: Mode
    builder: IssueBuilder
    extension_codes: np.ndarray | None = None  # ``key_codes`` of the file's extensions

    def issues(self) -> pd.DataFrame:
        """Run the checks; their issues (in the order validation would have listed them)."""
        requirements.check(
            self.view,
            self.cells,
            self.flags,
            self.catalog,
            self.mode,
            self.builder,
            self.extension_codes,
        )
        return self.builder.frame()


def _header_map(table: Table, catalog: Catalog) -> dict[str, str]:
    """Field/license id -> header as uploaded, falling back to the canonical header."""
    out = {key: catalog.header_of(key) for key in (*catalog.fields, *catalog.packages)}
    out.update({key: catalog.header_of(key) for key in catalog.licenses})
    for col in table.columns:
        if col.key is not None:
            out[col.key] = col.header
    return out


def _cells(table: Table) -> pd.DataFrame:
    """The table's field columns renamed to field ids."""
    picked = {c.key: table.frame[c.index] for c in table.columns if c.kind == "field" and c.key}
    return pd.DataFrame(picked, index=table.frame.index)


# field type -> the issue code of a cell in the wrong format
_FORMAT_CODES = {
    "email": "invalid_email",
    "phone": "invalid_phone",
    "extension": "invalid_extension",
}


def _acceptable(ftype: str, text: pd.Series, numbers: _Numbers | None) -> np.ndarray:
    """Cells of a field of type ``ftype`` in an acceptable format: blank ("no change";
    ``missing_email`` says the rest), an address with at most 64 characters before the @,
    E.164 once the separators are removed, or 2 to 10 digits. ``numbers``: the phone
    (compacted) or extension column's byte profile."""
    if ftype == "email":
        ok = text.str.fullmatch(EMAIL_RE).to_numpy(dtype=bool) & ~_long_local_part(text)
        return np.asarray((text == "").to_numpy(dtype=bool) | ok, dtype=bool)
    assert numbers is not None
    if ftype == "phone":
        found = numbers.digits(E164_RE, True, 8, 15)
    else:
        found = numbers.digits(EXTENSION_RE, False, 2, 10)
    blank: np.ndarray = (text == "").to_numpy(dtype=bool)
    return np.asarray(blank | found, dtype=bool)


def _long_local_part(text: pd.Series) -> np.ndarray:
    """More than 64 characters before the @: searched only in cells of 66 bytes or more."""
    arrow = arrow_text(text)
    found = np.zeros(len(arrow), dtype=bool)
    long = byte_lengths(arrow) >= 66
    if long.any():
        hits = pc.match_substring_regex(arrow.filter(pyarrow.array(long)), r"^[^@]{65,}@")
        found[long] = np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)
    return found


def compact_phone(values: pd.Series) -> pd.Series:
    """Phone numbers without spaces, dashes, dots, slashes and brackets."""
    return _compact(_Numbers.of(values), values.index)


def _compact(numbers: _Numbers, index: pd.Index) -> pd.Series:
    """Arrow's RE2 replace, run only on the cells that hold a separator: most numbers have
    none, and RE2 cell by cell cost ~0.2 s per million cells even when it replaced nothing
    (pandas' ``str.replace`` would fall back to Python's ``re``: 2.5x slower again)."""
    arrow = numbers.text
    has = pyarrow.array((numbers.bits & _SEPARATOR) != 0)
    if pc.any(has).as_py():
        part = pc.replace_substring_regex(arrow.filter(has), PHONE_SEPARATORS, "")
        arrow = pc.replace_with_mask(arrow, has, part)
    return pd.Series(arrow, index=index, dtype="str")


# Byte classes of the number checks. RE2's \s in PHONE_SEPARATORS is ASCII [\t\n\f\r ];
# every MANGLED_RE match holds one of . , e E.
_OTHER, _PLUS, _NON_ASCII, _MARK, _SEPARATOR = 1, 2, 4, 8, 16


def _byte_classes() -> np.ndarray:
    bits = np.full(256, _OTHER, dtype=np.uint8)
    bits[ord("0") : ord("9") + 1] = 0
    bits[ord("+")] = _PLUS
    bits[0x80:] = _NON_ASCII
    bits[[ord(c) for c in ".,eE"]] |= _MARK
    bits[[ord(c) for c in "\t\n\f\r -.()[]/"]] |= _SEPARATOR
    return bits


_CLASSES = _byte_classes()


@dataclass
class _Numbers:
    """A number column as one Arrow array and, per cell, the byte classes it holds, its
    length in bytes and its first byte: one pass over the bytes answers the format checks."""

    text: pyarrow.Array
    bits: np.ndarray
    length: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, values: pd.Series) -> _Numbers:
        text = arrow_text(values)
        return cls(text, byte_bits(text, _CLASSES), byte_lengths(text), first_bytes(text))

    def digits(self, pattern: str, plus: bool, least: int, most: int) -> np.ndarray:
        """``pattern`` fully matched: ``\\+\\d{least,most}`` with ``plus``, else
        ``\\d{least,most}``."""
        extra = 1 if plus else 0
        ok = (self.length >= least + extra) & (self.length <= most + extra)
        ok &= (self.bits & (_OTHER | _NON_ASCII)) == 0
        if plus:  # exactly one +, in front
            ok &= (self.first == ord("+")) & (pc.count_substring(self.text, "+").to_numpy() == 1)
        else:
            ok &= (self.bits & _PLUS) == 0
        return self._python_on_non_ascii(pattern, ok)

    def mangled(self) -> np.ndarray:
        """``MANGLED_RE`` fully matched; RE2 runs only on ASCII cells holding . , e or E."""
        marked = (self.bits & (_MARK | _NON_ASCII)) == _MARK
        return self._python_on_non_ascii(MANGLED_RE, fullmatch_where(self.text, marked, MANGLED_RE))

    def _python_on_non_ascii(self, pattern: str, ok: np.ndarray) -> np.ndarray:
        """``ok`` with its non-ASCII cells (rare in a number field) decided by Python's
        ``re.fullmatch``: pandas sends such columns to ``re``, whose ``\\d`` is Unicode-aware,
        so the answers stay those of the pandas checks this replaced."""
        odd = (self.bits & _NON_ASCII) != 0
        if odd.any():
            regex = re.compile(pattern)
            cells = self.text.filter(pyarrow.array(odd)).to_pylist()
            ok[odd] = [regex.fullmatch(c) is not None for c in cells]
        return ok


def _is_phone(fid: str, catalog: Catalog) -> bool:
    return catalog.fields[fid].type == "phone"


def _checked_numbers(
    numbers: dict[str, _Numbers], phones: dict[str, pd.Series]
) -> dict[str, _Numbers]:
    """The byte profiles the format checks read: a phone's compacted text (profiled again
    only when compacting changed a cell), an extension's own."""
    out = dict(numbers)
    for fid, plain in phones.items():
        if ((numbers[fid].bits & _SEPARATOR) != 0).any():
            out[fid] = _Numbers.of(plain)
    return out


def _format_schema(
    catalog: Catalog, present: list[str], numbers: dict[str, _Numbers]
) -> pa.DataFrameSchema:
    """The pandera schema of the cells' formats, built from the catalogue: one column per
    present field whose type has a format, with the check that type calls for (its error is
    the issue code). The checks are whole-column masks (``_acceptable``)."""
    columns = {
        fid: pa.Column(
            str, [_format_check(catalog.fields[fid].type, numbers.get(fid))], nullable=False
        )
        for fid in present
        if catalog.fields[fid].type in _FORMAT_CODES
    }
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


def _format_check(ftype: str, profile: _Numbers | None) -> pa.Check:
    def check(text: pd.Series) -> pd.Series:
        return pd.Series(_acceptable(ftype, text, profile), index=text.index)

    return pa.Check(check, error=_FORMAT_CODES[ftype])


def _format_issues(
    cells: pd.DataFrame,
    catalog: Catalog,
    b: IssueBuilder,
    mangled: dict[str, np.ndarray],
    numbers: dict[str, _Numbers],
) -> None:
    """Run the pandera schema lazily and turn its failure cases into issues; a cell already
    reported as ``number_mangled`` gets no second issue. ``numbers``: ``_checked_numbers``."""
    schema = _format_schema(catalog, list(cells.columns), numbers)
    try:
        schema.validate(cells, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        cases = cases[cases["index"].notna()].drop_duplicates(["index", "column", "check"])
        for (column, code), group in cases.groupby(["column", "check"], sort=False):
            rows = pd.Index(group["index"].astype("int64"))
            if str(column) in mangled:
                at = cells.index.get_indexer(rows)
                rows = rows[~mangled[str(column)][at]]
            b.cells(rows, str(column), str(code), FIX.get(str(code), "correct the value"))


def _mangled_issues(
    table: Table, catalog: Catalog, numbers: dict[str, _Numbers], index: pd.Index, b: IssueBuilder
) -> dict[str, np.ndarray]:
    """``number_mangled``: a phone stored as a number, or any number (the phone and
    extension fields, ``numbers``) in scientific/fraction form. Returns the mask of the
    rows it reported, per field."""
    out: dict[str, np.ndarray] = {}
    for fid, profile in numbers.items():
        mask = profile.mangled()
        col = table.column_for(fid)
        if _is_phone(fid, catalog) and table.numeric is not None and col is not None:
            mask |= table.numeric[col.index].to_numpy(dtype=bool) & (profile.length > 0)
        out[fid] = mask
        b.cells(index[mask], fid, "number_mangled", FIX["number_mangled"])
    return out


def _flags(table: Table, catalog: Catalog, b: IssueBuilder) -> dict[str, pd.Series]:
    """Parse every boolean column; invalid words become ``invalid_boolean`` and count as blank."""
    out: dict[str, pd.Series] = {}
    bool_fields = {f.id for f in catalog.fields.values() if f.type == "boolean"}
    for col in table.columns:
        if col.key is None or not (
            col.kind in ("package", "basic", "product") or col.key in bool_fields
        ):
            continue
        text = table.frame[col.index]
        arrow = arrow_text(text)
        is_true, is_false = _boolean_words(arrow, catalog)
        unknown = ~(is_true | is_false)
        bad = unknown & filled_cells(arrow)
        b.cells(text.index[bad], col.key, "invalid_boolean", FIX["invalid_boolean"], values=text)
        out[col.key] = pd.Series(pd.arrays.BooleanArray(is_true, unknown), index=text.index)
    return out


def _boolean_words(text: pyarrow.Array, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Cells whose lowercase is a true word, and a false word.

    The exact TRUE and FALSE cells are found by equality scans (``_common_words``); one
    hash lookup of the other non-blank cells as they are against every word in lower, UPPER
    and Capitalised spelling settles nearly all the rest; only what is left is lowercased
    and looked up again. (Lowercasing every cell and two lookups cost ~40 ms a column at 1M
    rows; one lookup of every cell ~8 ms.)"""
    spellings, truth = _spellings(catalog.true_words, catalog.false_words)
    if len(truth) == 0:
        return np.zeros(len(text), dtype=bool), np.zeros(len(text), dtype=bool)
    found = _common_words(text, spellings)
    filled = filled_cells(text)
    rest = (found < 0) & filled
    if rest.any():
        found[rest] = _word_index(_picked(text, rest), spellings)
    retry = (found < 0) & filled
    if retry.any():
        found[retry] = _word_index(pc.utf8_lower(text.filter(pyarrow.array(retry))), spellings)
    known = found >= 0
    said = truth[np.where(known, found, 0)]
    return known & said, known & ~said


@functools.lru_cache(maxsize=4)
def _spellings(
    true_words: frozenset[str], false_words: frozenset[str]
) -> tuple[pyarrow.Array, np.ndarray]:
    """Every word in lower, UPPER and Capitalised spelling, kept only where Arrow's
    lowercase of the spelling is the word itself (so a hit means exactly what lowercasing
    the cell would have found), and for each whether it says true."""
    words = [(w, True) for w in sorted(true_words)] + [(w, False) for w in sorted(false_words)]
    candidates = [(s, w, t) for w, t in words for s in dict.fromkeys((w, w.upper(), w.title()))]
    lowered = pc.utf8_lower(pyarrow.array([s for s, _, _ in candidates])).to_pylist()
    kept = [(s, t) for (s, w, t), low in zip(candidates, lowered, strict=True) if low == w]
    spellings = pyarrow.array([s for s, _ in kept], pyarrow.large_string())
    return spellings, np.array([t for _, t in kept], dtype=bool)


# The spellings most files use (the reports write them): compared before any hashing.
_COMMON_WORDS = ("TRUE", "FALSE")


def _common_words(text: pyarrow.Array, spellings: pyarrow.Array) -> np.ndarray:
    """Each cell's position in ``spellings`` where it is exactly one of ``_COMMON_WORDS``;
    -1 elsewhere. Two equality scans cost ~2 ms a column where the hash lookup of every
    cell cost ~8 ms (eleven boolean columns in the bench file)."""
    found = np.full(len(text), -1, dtype=np.int32)  # a few dozen spellings
    known = spellings.to_pylist()
    for word in _COMMON_WORDS:
        if word in known:
            hit = pc.fill_null(pc.equal(text, word), False).to_numpy(zero_copy_only=False)
            found[np.asarray(hit, dtype=bool)] = known.index(word)
    return found


def _picked(text: pyarrow.Array, where: np.ndarray) -> pyarrow.Array:
    """The cells of ``where``; the array itself when that is all of them (no copy)."""
    return text if bool(where.all()) else text.filter(pyarrow.array(where))


def _word_index(text: pyarrow.Array, spellings: pyarrow.Array) -> np.ndarray:
    """Each cell's position in ``spellings``; -1 when absent."""
    index = pc.fill_null(pc.index_in(text, value_set=spellings), -1)
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)


def _row_package(
    flags: dict[str, pd.Series], catalog: Catalog, index: pd.Index, b: IssueBuilder
) -> pd.Series:
    """The package each row sets TRUE; more than one is ``multiple_packages``."""
    present = [p for p in catalog.packages if p in flags]
    if not present:
        return pd.Series("", index=index, dtype=object)
    trues = np.column_stack([is_true(flags[p]).to_numpy() for p in present])
    count = trues.sum(axis=1)
    first = np.where(count > 0, np.asarray(present, dtype=object)[trues.argmax(axis=1)], "")
    multi = count > 1
    if multi.any():
        names = _joined_headers(trues[multi], [catalog.header_of(p) for p in present])
        rows = index[multi]
        message = pd.Series(
            "more than one package is TRUE (" + names + "); a user holds at most one package: "
            "set exactly one package column to TRUE",
            index=rows,
        )
        b.rows(rows, "multiple_packages", message, values=pd.Series(names, index=rows))
    return pd.Series(first, index=index, dtype=object)


def _joined_headers(trues: np.ndarray, headers: list[str]) -> np.ndarray:
    """Per row, the headers of the TRUE columns joined by ", " (vectorised over rows)."""
    out = np.full(len(trues), "", dtype=object)
    for col, header in enumerate(headers):
        hit = trues[:, col]
        out[hit] = np.where(out[hit] == "", header, out[hit] + ", " + header)
    return out


def validate(
    table: Table,
    catalog: Catalog,
    mode: Mode = "add-only",
    current: pd.DataFrame | None = None,
    defer: bool = False,
) -> Validated:
    """Every check that needs no org; requirements on the after-the-row view of ``current``
    (with ``defer``, left to the caller: ``Validated.pending``)."""
    cells = _cells(table)
    headers = _header_map(table, catalog)
    email = cells["email"] if "email" in cells else pd.Series("", index=cells.index)
    email_key = email.str.lower()
    # Aligning the org's users on the rows is Arrow work (hash lookup, takes) that releases
    # the GIL: it runs on the second core beside the row checks, and this thread helps with
    # the takes once its checks are done.
    aligner = None
    if current is not None:
        aligner = requirements.Aligner(current, email_key, cells.index, codes=True)
    with beside(_aligned, aligner) as aligned:
        b = IssueBuilder(cells, headers, email)
        flags, row_package = _row_checks(table, catalog, cells, _Keys(email_key, aligner), b)
        # Left to the planner, the extension duplicates would hash the extensions at its
        # memory peak (~50 MB of hash table): they are coded here, beside the aligner.
        extensions = key_codes(cells["extension"]) if defer and "extension" in cells else None
        if aligner is not None:
            aligner.help()
        at, cur = aligned.result()
    view = requirements.AfterView(cells, flags, row_package, mode, cur)
    left = IssueBuilder(cells, headers, email)
    checks = Requirements(view, cells, flags, catalog, mode, left, extensions)
    issues = b.frame() if defer else concat_issues([b.frame(), checks.issues()])
    pending = checks if defer else None
    after = view.frame()
    return Validated(
        table, cells, email_key, flags, row_package, after, issues, headers, cur, at, pending
    )


def _aligned(
    aligner: requirements.Aligner | None,
) -> tuple[np.ndarray | None, pd.DataFrame | None]:
    """Each row's user position and the aligned users (None, None: no org)."""
    return (None, None) if aligner is None else aligner.run()


@dataclass
class _Keys:
    """The rows' lowercase emails and, with an org, the ``Aligner`` that codes them beside
    the user positions (``requirements.user_codes``): then the duplicate check hashes no
    email itself."""

    email: pd.Series
    aligner: requirements.Aligner | None

    def codes(self, phone: pd.Series | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``key_codes`` of the emails and the (compacted) phones; without an aligner both
        are hashed at once in two threads."""
        if self.aligner is None:
            if phone is None:
                return key_codes(self.email), None
            email, phones = codes_of([self.email, phone])
            return email, phones
        coded = None if phone is None else key_codes(phone)  # while the aligner codes emails
        return self.aligner.email_codes(), coded


def _row_checks(
    table: Table, catalog: Catalog, cells: pd.DataFrame, keys: _Keys, b: IssueBuilder
) -> tuple[dict[str, pd.Series], pd.Series]:
    """The checks of each row on its own cells (formats, flags, duplicates): no org needed."""
    _email_presence(cells, b)
    numbers = {
        f: _Numbers.of(cells[f])
        for f in cells.columns
        if catalog.fields[f].type in ("phone", "extension")
    }
    mangled = _mangled_issues(table, catalog, numbers, cells.index, b)
    phones = {f: _compact(n, cells.index) for f, n in numbers.items() if _is_phone(f, catalog)}
    _format_issues(cells, catalog, b, mangled, _checked_numbers(numbers, phones))
    flags = _flags(table, catalog, b)
    row_package = _row_package(flags, catalog, cells.index, b)
    _suspended(table, flags, b)
    _user_duplicates(keys, phones.get("phone_number"), b)
    return flags, row_package


def _email_presence(cells: pd.DataFrame, b: IssueBuilder) -> None:
    if "email" not in cells:
        return
    blank = cells.index[(cells["email"] == "").to_numpy()]
    b.rows(
        blank,
        "missing_email",
        "the User ID/Email cell is empty: every row needs the "
        "user's email address; fill it in or delete the row",
        column="email",
    )


_DUPLICATES = {
    "email": ("duplicate_email", "each user may appear once"),
    "phone_number": ("duplicate_phone", "give each user a different phone number"),
}


def _duplicates(
    keys: pd.Series, usable: pd.Series, fid: str, code: str, b: IssueBuilder, fix: str
) -> None:
    """Second and later occurrences of a key, each citing the row of the first (the
    customers' checks use it too)."""
    rows, firsts = duplicate_rows(keys[usable.to_numpy()])
    b.cells(rows, fid, code, fix, extra=" (first used in row " + firsts.astype(str) + ")")


def _user_duplicates(keys: _Keys, phone_key: pd.Series | None, b: IssueBuilder) -> None:
    """Second and later occurrences of a non-blank email (lowercase) or phone number
    (compacted), each citing the row of the first. Whole columns are coded and the blanks
    dropped from the codes: no filtered copy of the text."""
    email_codes, phone_codes = keys.codes(phone_key)
    _coded_duplicates("email", keys.email, email_codes, b)
    if phone_key is not None and phone_codes is not None:
        _coded_duplicates("phone_number", phone_key, phone_codes, b)


def _coded_duplicates(fid: str, key: pd.Series, codes: np.ndarray, b: IssueBuilder) -> None:
    """``_user_duplicates`` of one column whose keys are coded (``codes``, one per row)."""
    used = filled_cells(arrow_text(key))
    rows, firsts = duplicate_codes(codes[used], key.index[used])
    code, fix = _DUPLICATES[fid]
    b.cells(rows, fid, code, fix, extra=" (first used in row " + firsts.astype(str) + ")")


def _suspended(table: Table, flags: dict[str, pd.Series], b: IssueBuilder) -> None:
    """``suspended_license``: TRUE in a column the file itself marks ``(Suspended)``."""
    for col in table.columns:
        if col.suspended and col.key in flags:
            rows = flags[col.key].index[is_true(flags[col.key]).to_numpy()]
            b.cells(
                rows,
                col.key,
                "suspended_license",
                "set the cell to FALSE or leave it blank until the service is reactivated",
                values=table.frame[col.index],
            )


__all__ = ["ISSUE_COLUMNS", "Validated", "validate"]
