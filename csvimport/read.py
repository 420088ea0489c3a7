"""Bytes to a table of text: encoding, dialect, XLSX and header matching (SPEC section 3).

Why a module of its own: everything after it may assume a rectangular table of trimmed strings
indexed by the spreadsheet row number, whatever tool wrote the file. What it decided:

* **Text only.** Every cell is a ``str``; nothing is inferred (no NaN, no numbers, no dates).
  The frame uses pandas' default string dtype (``str``, pyarrow-backed, compact for a million
  rows) and an empty cell is ``""``, never NA, so ``frame[i] == ""`` is the blank test.
* **Row numbers** are record numbers: the header is row 1, the first record row 2, a record with
  quoted newlines is one row, a leading ``sep=`` line is not a row. Blank rows (every cell empty
  after trimming) are dropped and keep their numbers. Leading blank rows before the header are
  skipped too: the first non-blank row is the header.
* **CSV**: strict UTF-8 (``utf-8``, or ``utf-8-sig`` with a BOM), UTF-16 with a BOM (``utf-16``),
  else ``cp1252``; bytes that fit none of them, or NUL characters, are ``unreadable_file``.
  The delimiter (``,`` ``;`` tab ``|``) is sniffed on the first 64 KiB by parsing it with each
  candidate (quotes respected) and taking the one whose header has more than one field and
  whose records agree best with it; a one-column file reads with ``,``. pyarrow parses the
  (re-encoded) UTF-8 bytes; when it cannot (a record with a different field count) the Python
  ``csv`` module parses the file again, which is slower but exact.
* **Ragged records**: fewer fields than the header read as empty trailing cells (how many tools
  write trailing empties); more fields than the header are dropped when empty and otherwise
  reject the file (``unreadable_file`` naming the row), because a stray delimiter shifts every
  later value into the wrong column and no guess would be safe.
* **Cleaning**: every cell is trimmed of white space (everything ``str.isspace`` knows, which
  includes U+00A0) and of the zero-width characters of ``catalog.INVISIBLE``; a leading ``'``
  followed by ``= @ + -``, tab or CR is dropped (the mark the reports put on formula-like text,
  SPEC section 7), any other leading ``'`` stays. Emails keep their case.
* **XLSX** (python-calamine): the first visible worksheet unless ``Options.sheet``. Cells read
  as the admin sees them: integer-valued numbers as digits (``1001``), other numbers in the
  shortest general form (``1.5``, ``4.477E+20``), booleans ``TRUE``/``FALSE``, dates and times
  as ISO text. ``numeric`` marks every cell stored as a number (not booleans or dates), so
  validation can tell a phone number stored as a number from one stored as text.
* **Hostile XLSX**: before calamine sees the file, the ZIP is checked: total uncompressed size
  (50 x ``max_bytes``, at most 2 GiB), compression ratio of large members (> 100), a DTD in any
  XML part (defusedxml), and the real extent of every worksheet (calamine ignores the declared
  ``<dimension>`` but allocates rows x columns densely, so one cell at ``XFD1048576`` would
  exhaust memory): more than ``_MAX_CELLS`` cells, or a row beyond Excel's 1,048,576, is
  ``unreadable_file``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import defusedxml.ElementTree as SafeET
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from csvimport import catalog as _catalog
from csvimport.beside import in_order
from csvimport.csvparse import (
    OLE_MAGIC,
    TRIM_CHARS,
    is_csv,
    parse_csv,
)
from csvimport.csvparse import issue as _issue
from csvimport.csvparse import reject as _reject
from csvimport.masks import filled_cells, text_offsets
from csvimport.model import Column, FileRejected, Issue, Options, Table
from csvimport.prefetch import Prefetch

T = TypeVar("T")

_UNQUOTE = r"^'[=@+\-\t\r]"  # RE2: the report's neutralising quote before formula-like text
_SUBSCRIPTION = re.compile(r"\s*\[([^\[\]]*)\]\s*$")
_SUSPENDED = re.compile(r"\s*\(\s*suspended\s*\)\s*$", re.IGNORECASE)

_MAX_UNZIPPED = 2 * 1024**3
_MAX_RATIO = 100
_RATIO_MIN_SIZE = 1024 * 1024
_MAX_CELLS = 2**26  # dense cells calamine may allocate (~32 bytes each)
_EXCEL_MAX_ROW = 1_048_576
_EXCEL_MAX_COL = 16_384
# Literal prefixes keep these scans at ~1 GB/s: rows, and cells beyond column Z or row 999,999.
_ROW_TAG = re.compile(rb'<row [^>]*?\br="(\d+)"')
_RARE_REF = re.compile(rb' r="(?:([A-Z]{2,})(\d+)|[A-Z]?(\d{7,}))"')
_CHUNK = 1024 * 1024
_OVERLAP = 64

FIX_XLSX = (
    "Open it in Excel, save it as a normal .xlsx workbook (or 'CSV UTF-8') and upload it again."
)


class HeaderCatalog(Protocol):
    """What the reader needs of a catalogue; ``catalog.Catalog`` satisfies it."""

    @property
    def key_field(self) -> str:
        """Field id of the key column (``email`` for users); absent -> ``missing_column``."""
        ...

    def match_header(self, header: str) -> tuple[str, str | None] | None: ...

    def header_of(self, key: str) -> str: ...


@dataclass
class RawTable:
    """A decoded and parsed file before header matching.

    ``frame``: columns ``0..n-1``, cells trimmed ``str`` ("" for empty), index ``row`` = the
    spreadsheet row number, blank rows dropped. ``numeric``: for XLSX a bool frame of the same
    shape, True where the cell was stored as a number (int or float; not bool or date); None
    for CSV.
    """

    header: list[str]
    frame: pd.DataFrame
    encoding: str | None
    delimiter: str | None
    kind: Literal["csv", "xlsx"]
    sheet: str | None = None
    numeric: pd.DataFrame | None = None


# --------------------------------------------------------------------------- public API


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of the file, streamed in 1 MiB chunks (raises OSError if unreadable)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(
    path: Path,
    options: Options,
    catalog: HeaderCatalog | None = None,
    prefetched: Prefetch | None = None,
) -> Table:
    """Read ``path`` and match its header; raise ``FileRejected`` for file-level errors.

    ``prefetched``: the file's bytes, read already (``ready()``). ``Table.issues`` holds the
    file-level warnings (``unknown_column``).
    """
    cat: HeaderCatalog = catalog if catalog is not None else _catalog.default()
    raw = read_raw(path, options, prefetched)
    columns, issues = match_columns(raw.header, cat)
    issues = _drop_empty_unnamed(issues, columns, raw.frame)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise FileRejected(errors)
    return Table(
        header=raw.header,
        frame=raw.frame,
        columns=columns,
        encoding=raw.encoding,
        delimiter=raw.delimiter,
        kind=raw.kind,
        sheet=raw.sheet,
        numeric=raw.numeric,
        issues=issues,
    )


def read_raw(path: Path, options: Options, prefetched: Prefetch | None = None) -> RawTable:
    """Decode and parse ``path`` (CSV or XLSX) without looking at what the headers mean;
    ``prefetched``: its bytes, when they were read already."""
    size = _size_of(path) if prefetched is None else prefetched.size
    if size > options.max_bytes:
        _reject(
            "file_too_large",
            f"The file is {size:,} bytes; the limit is {options.max_bytes:,} bytes "
            "(--max-bytes). Split it into smaller files, or raise --max-bytes.",
        )
    head = _head_of(path) if prefetched is None else prefetched.head
    if head.startswith(OLE_MAGIC):
        _reject(
            "unreadable_file",
            "The file is a legacy .xls or a password-protected workbook, which cannot be "
            f"read. {FIX_XLSX}",
        )
    if not is_csv(path, head):
        return _read_xlsx(path, options)
    return _read_csv(path, options, prefetched)


def match_columns(header: list[str], catalog: HeaderCatalog) -> tuple[list[Column], list[Issue]]:
    """Columns for ``header`` plus file-level issues.

    Errors: ``missing_column`` (no key column; column = canonical header) and
    ``duplicate_column`` (two columns for the same field, or for the same license with the same
    subscription and suspension; column = the second header). Warnings: ``unknown_column``.
    Read-only columns are accepted silently.
    """
    columns = [_column(i, h, catalog) for i, h in enumerate(header)]
    issues = [_unknown(c) for c in columns if c.kind == "unknown"]
    issues += _duplicates(columns, catalog)
    if not any(c.kind == "field" and c.key == catalog.key_field for c in columns):
        canonical = catalog.header_of(catalog.key_field)
        issues.insert(
            0,
            _issue(
                "missing_column",
                f"The file has no '{canonical}' column (found: {_listing(header)}). Add a "
                f"column headed '{canonical}' with one address per row.",
                canonical,
            ),
        )
    return columns, issues


# --------------------------------------------------------------------------- headers


def split_suffixes(header: str) -> tuple[str, str | None, bool]:
    """``(base, subscription, suspended)``: ``Webex Calling [Sub1] (Suspended)`` -> base etc."""
    base, subscription, suspended = header.strip(TRIM_CHARS), None, False
    while True:
        if (m := _SUBSCRIPTION.search(base)) and subscription is None and m.group(1).strip():
            subscription, base = m.group(1).strip(), base[: m.start()]
        elif (m := _SUSPENDED.search(base)) and not suspended:
            suspended, base = True, base[: m.start()]
        else:
            return base, subscription, suspended


def _column(index: int, header: str, catalog: HeaderCatalog) -> Column:
    if header and (found := catalog.match_header(header)) is not None:
        return Column(index, header, found[0], found[1])
    base, subscription, suspended = split_suffixes(header)
    found = catalog.match_header(base) if base and base != header else None
    if found is None:
        return Column(index, header, "unknown")
    return Column(index, header, found[0], found[1], subscription, suspended)


def _unknown(col: Column) -> Issue:
    where = f"Column {column_letter(col.index)}"
    if not col.header:
        message = f"{where} has no header; its values are ignored. Add a header or delete it."
    else:
        message = (
            f"{where} '{col.header}' is not a known column and is ignored. Correct the header "
            "to one of the template's column names, or delete the column."
        )
    return Issue("unknown_column", message, None, col.header, "warning")


def _duplicates(columns: list[Column], catalog: HeaderCatalog) -> list[Issue]:
    seen: dict[tuple[str, str | None, bool], Column] = {}
    issues: list[Issue] = []
    for col in columns:
        if col.key is None or col.kind in ("unknown", "readonly"):
            continue
        ident = (col.key, None, False) if col.kind == "field" else _license_ident(col)
        first = seen.setdefault(ident, col)
        if first is not col:
            issues.append(
                _issue(
                    "duplicate_column",
                    f"Columns '{first.header}' ({column_letter(first.index)}) and "
                    f"'{col.header}' ({column_letter(col.index)}) both mean "
                    f"'{catalog.header_of(col.key)}'. Keep one of them and delete the other.",
                    col.header,
                )
            )
    return issues


def _license_ident(col: Column) -> tuple[str, str | None, bool]:
    return (str(col.key), col.subscription, col.suspended)


def _drop_empty_unnamed(
    issues: list[Issue], columns: list[Column], frame: pd.DataFrame
) -> list[Issue]:
    """An unnamed column without values (trailing delimiters) is not worth a warning."""
    unnamed = [c for c in columns if not c.header and c.kind == "unknown"]
    kept = [i for i in issues if not (i.code == "unknown_column" and not i.column)]
    return kept + [_unknown(c) for c in unnamed if frame[c.index].str.len().any()]


def column_letter(index: int) -> str:
    """Spreadsheet letter of 0-based column ``index`` (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _listing(header: list[str]) -> str:
    named = [f"'{h}'" for h in header if h]
    return ", ".join(named[:8]) + (", ..." if len(named) > 8 else "") if named else "none"


# --------------------------------------------------------------------------- common


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        _reject("unreadable_file", f"The file cannot be opened ({exc.strerror}). Upload it again.")


def _head_of(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(8)
    except OSError as exc:
        _reject("unreadable_file", f"The file cannot be read ({exc.strerror}). Upload it again.")


def _trim(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.utf8_trim(column, characters=TRIM_CHARS)


def _clean(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous ``large_string`` array, trimmed.

    Contiguous because every later ``take`` (issue values, rejected rows, the planner) on a
    many-chunk array first concatenates all its chunks: 20 ms per call at 1M rows. Trimming
    copies the column, so it runs only when some cell may start or end with a trimmable
    character (most columns of a clean file never do)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    column = column.cast(pa.large_string())
    return _trim(column) if _may_need_trim(column) else column


# TRIM_CHARS in UTF-8, as one byte table: bit 1 marks the one-byte trim characters, bit 2
# the bytes a multi-byte one starts with, bit 4 the bytes one ends with; and the longer ones
# as the integer of their bytes (big-endian) by length, to be matched in full.
_WIDE = [c.encode("utf-8") for c in TRIM_CHARS if len(c.encode("utf-8")) > 1]
_ONE, _WIDE_HEAD, _WIDE_TAIL = 1, 2, 4
_TRIM_TABLE = np.zeros(256, dtype=np.uint8)
_TRIM_TABLE[[ord(c) for c in TRIM_CHARS if ord(c) < 0x80]] |= _ONE
_TRIM_TABLE[[w[0] for w in _WIDE]] |= _WIDE_HEAD
_TRIM_TABLE[[w[-1] for w in _WIDE]] |= _WIDE_TAIL
_WIDE_KEYS = {
    width: np.array(sorted(int.from_bytes(w, "big") for w in _WIDE if len(w) == width))
    for width in sorted({len(w) for w in _WIDE})
}


def _may_need_trim(column: pa.Array) -> bool:
    """Whether any cell starts or ends with a character of ``TRIM_CHARS``: exact, by one
    byte-table lookup of the first and of the last byte of every cell, and a full match of
    the few cells whose end bytes can belong to a multi-byte one (a column of names full of
    "Ø…" and "…ü" needs no trim copy)."""
    data_buf = column.buffers()[2]
    if len(column) == 0 or data_buf is None or data_buf.size == 0:
        return False
    offsets = text_offsets(column)
    data = np.frombuffer(data_buf, dtype=np.uint8)
    # An empty cell reads a neighbour's byte here: it can only raise a suspicion, which the
    # exact pass below then clears.
    first = _TRIM_TABLE[data[np.minimum(offsets[:-1], len(data) - 1)]]
    last = _TRIM_TABLE[data[offsets[1:] - 1]]
    if not (np.bitwise_or.reduce(first) | np.bitwise_or.reduce(last)):
        return False
    filled = offsets[1:] > offsets[:-1]
    starts, ends = offsets[:-1][filled], offsets[1:][filled]
    first, last = first[filled], last[filled]
    if (first & _ONE).any() or (last & _ONE).any():
        return True
    heads, tails = (first & _WIDE_HEAD) != 0, (last & _WIDE_TAIL) != 0
    return _wide_at(data, starts[heads], ends[heads], True) or _wide_at(
        data, ends[tails], starts[tails], False
    )


def _wide_at(
    data: np.ndarray[Any, Any], at: np.ndarray[Any, Any], other: np.ndarray[Any, Any], head: bool
) -> bool:
    """Whether a multi-byte trim character starts at ``at`` (``head``) or ends just before
    it, within cells whose other end is ``other``."""
    for width, keys in _WIDE_KEYS.items():
        fits = (other - at >= width) if head else (at - other >= width)
        first = at[fits] if head else at[fits] - width
        if not len(first):
            continue
        key = np.zeros(len(first), dtype=np.int64)
        for step in range(width):
            key = (key << 8) | data[first + step]
        if np.isin(key, keys).any():
            return True
    return False


def _unquote(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if not pc.any(pc.starts_with(column, "'")).as_py():
        return column  # the usual case, ten times cheaper than the regex
    marked = pc.match_substring_regex(column, _UNQUOTE)
    return pc.if_else(marked, pc.utf8_slice_codeunits(column, 1), column)


def _build(
    table: pa.Table, options: Options, numeric: np.ndarray[Any, Any] | None = None
) -> tuple[list[str], pd.DataFrame, pd.DataFrame | None]:
    """Header, frame and numeric mask from a table whose position ``i`` is row ``i + 1``."""
    raw = list(table.columns)
    table = pa.table({})  # drop our reference: each raw column goes once it is cleaned
    # Column by column on both cores (Arrow and NumPy work outside the GIL).
    columns = list(in_order(_clean, _drained(raw)))
    nonblank = np.zeros(len(columns[0]), dtype=bool)
    for column in columns:
        nonblank |= filled_cells(column)
    positions = np.flatnonzero(nonblank).astype(np.uint64)  # as Arrow gave it before
    if len(positions) == 0:
        _reject("empty_file", "The file is empty: it has no header row. " + _FIX_EMPTY)
    header = [str(c[int(positions[0])].as_py()) for c in columns]
    rows = positions[1:]
    if len(rows) == 0:
        _reject("empty_file", "The file has a header row but no user rows. " + _FIX_EMPTY)
    if len(rows) > options.max_rows:
        _reject(
            "too_many_rows",
            f"The file has {len(rows):,} user rows; the limit is {options.max_rows:,} "
            "(--max-rows). Split it into files of at most that many rows, or raise --max-rows.",
        )
    columns = list(in_order(lambda column: _unquote(_rows_of(column, rows)), _drained(columns)))
    width = len(columns)
    frame = pa.table({str(i): c for i, c in enumerate(columns)}).to_pandas()
    del columns
    frame.columns = pd.RangeIndex(width)
    frame.index = pd.Index(rows + 1, name="row")
    mask = None
    if numeric is not None:
        mask = pd.DataFrame(numeric[rows], index=frame.index, columns=frame.columns)
    return header, frame, mask


def _drained(items: list[T]) -> Iterator[T]:
    """The items in order, each dropped from ``items`` as it is handed out (so that the
    caller's list no longer keeps a column alive once it has been replaced)."""
    items.reverse()
    while items:
        yield items.pop()


def _rows_of(
    column: pa.ChunkedArray | pa.Array, rows: np.ndarray[Any, Any]
) -> pa.ChunkedArray | pa.Array:
    """The cells at positions ``rows``; a slice when no blank row sits between them."""
    start, stop = int(rows[0]), int(rows[-1]) + 1
    if stop - start == len(rows):
        return column.slice(start, stop - start)
    return pc.take(column, pa.array(rows))


_FIX_EMPTY = "Put the column headers in row 1 and one user per row below, then upload again."


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path, options: Options, prefetched: Prefetch | None = None) -> RawTable:
    parsed = prefetched.parsed() if prefetched is not None else None  # parsed on its thread
    if parsed is None:
        try:
            raw = path.read_bytes() if prefetched is None else prefetched.take()
        except OSError as exc:
            _reject(
                "unreadable_file", f"The file cannot be read ({exc.strerror}). Upload it again."
            )
        parsed = parse_csv(raw)
        del raw
    header, frame, _ = _build(parsed.table, options)
    return RawTable(header, frame, parsed.encoding, parsed.delimiter, "csv")


# --------------------------------------------------------------------------- XLSX


def _read_xlsx(path: Path, options: Options) -> RawTable:
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    check_xlsx(path, min(50 * options.max_bytes, _MAX_UNZIPPED))
    try:
        book = CalamineWorkbook.from_path(str(path))
        metas = book.sheets_metadata
        worksheets = [m for m in metas if m.typ == SheetTypeEnum.WorkSheet]
        name = _choose_sheet(
            [m.name for m in worksheets],
            [m.name for m in worksheets if m.visible == SheetVisibleEnum.Visible],
            options.sheet,
        )
        rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except FileRejected:
        raise
    except Exception as exc:  # calamine raises several unrelated types for broken files
        _reject("unreadable_file", f"The workbook cannot be read ({exc}). {FIX_XLSX}")
    texts, numbers = _xlsx_cells(rows)
    del rows
    header, frame, numeric = _build(texts, options, numbers)
    return RawTable(header, frame, None, None, "xlsx", name, numeric)


def _choose_sheet(names: list[str], visible: list[str], wanted: str | None) -> str:
    if wanted is not None:
        for name in names:
            if name == wanted or name.casefold() == wanted.strip().casefold():
                return name
        _reject(
            "unreadable_file",
            f"The workbook has no worksheet '{wanted}' (it has: "
            f"{', '.join(repr(n) for n in names) or 'none'}). Give one of these to --sheet.",
        )
    if not visible:
        _reject("unreadable_file", "The workbook has no visible worksheet. " + FIX_XLSX)
    return visible[0]


def _xlsx_cells(rows: list[list[Any]]) -> tuple[pa.Table, np.ndarray[Any, Any]]:
    """Text columns and the numeric mask; columns holding only strings skip the Python loop."""
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        _reject("empty_file", "The worksheet is empty: it has no header row. " + _FIX_EMPTY)
    numbers = np.zeros((len(rows), width), dtype=bool)
    arrays: dict[str, pa.Array] = {}
    for j, column in enumerate(zip(*rows, strict=True)):
        kinds = set(map(type, column))
        if kinds != {str}:
            if kinds & {int, float}:
                numbers[:, j] = [type(v) is float or type(v) is int for v in column]
            column = tuple(v if type(v) is str else cell_text(v) for v in column)
        arrays[f"c{j}"] = pa.array(column, pa.string())
    return pa.table(arrays), numbers


def cell_text(value: object) -> str:
    """An XLSX cell value as the admin sees it in the sheet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15G")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def check_xlsx(path: Path, max_unzipped: int) -> None:
    """Refuse ZIP bombs, DTDs and sheets whose real extent would exhaust memory."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_sizes(infos, max_unzipped)
            for info in infos:
                if info.filename.lower().endswith((".xml", ".rels")):
                    _check_no_dtd(archive, info)
                if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                    _check_extent(archive, info)
    except FileRejected:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as exc:
        _reject("unreadable_file", f"The file is not a valid .xlsx workbook ({exc}). {FIX_XLSX}")
    except Exception as exc:  # zlib.error, NotImplementedError (compression method), ...
        _reject("unreadable_file", f"The workbook is damaged ({exc!r}). {FIX_XLSX}")


def _check_sizes(infos: list[zipfile.ZipInfo], max_unzipped: int) -> None:
    total = sum(i.file_size for i in infos)
    if total > max_unzipped:
        _reject(
            "unreadable_file",
            f"The workbook unpacks to {total:,} bytes, more than the {max_unzipped:,} allowed. "
            "Remove unused sheets and images, or export the users sheet as 'CSV UTF-8'.",
        )
    for info in infos:
        if info.file_size >= _RATIO_MIN_SIZE and info.file_size > _MAX_RATIO * info.compress_size:
            _reject(
                "unreadable_file",
                f"The workbook part '{info.filename}' is compressed more than {_MAX_RATIO}:1, "
                f"which only a damaged or malicious file does. {FIX_XLSX}",
            )


def _check_no_dtd(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    with archive.open(info) as part:
        try:
            for _ in SafeET.iterparse(part, events=("start",), forbid_dtd=True):
                return
        except Exception as exc:  # DTDForbidden, EntitiesForbidden, ParseError
            _reject(
                "unreadable_file",
                f"The workbook part '{info.filename}' has a document type declaration or is "
                f"not well-formed XML ({type(exc).__name__}). {FIX_XLSX}",
            )


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part in 1 MiB chunks, each starting with the last bytes of the previous one."""
    tail = b""
    with archive.open(info) as part:
        while block := part.read(_CHUNK):
            yield tail + block
            tail = block[-_OVERLAP:]


def _check_extent(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    last_row, last_col = 0, 26
    for chunk in _chunks(archive, info):
        rows = [int(r) for r in _ROW_TAG.findall(chunk)]
        for letters, row, far_row in set(_RARE_REF.findall(chunk)):
            if letters:
                last_col = max(last_col, _column_number(letters))
            rows.append(int(row or far_row))
        last_row = max(last_row, *rows, 0)
    if last_row > _EXCEL_MAX_ROW or last_col > _EXCEL_MAX_COL or last_row * last_col > _MAX_CELLS:
        _reject(
            "unreadable_file",
            f"The worksheet part '{info.filename}' reaches row {last_row:,} and column "
            f"{column_letter(last_col - 1)}, far larger than a user list. Delete the unused "
            f"rows and columns (or cells far below or right of the data). {FIX_XLSX}",
        )


def _column_number(letters: bytes) -> int:
    number = 0
    for byte in letters:
        number = number * 26 + byte - 64
    return number
