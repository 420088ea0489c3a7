"""The small records every stage shares.

Kept free of logic so that every module can import it without pulling in pandas machinery,
SQL or I/O; pandas itself is imported only by the two functions that build frames, so that
the command line starts reading a file (``prefetch``) while pandas is still being imported.
Issues at scale travel as a DataFrame with the columns of ``ISSUE_COLUMNS`` (one
line per finding, vectorised); a single ``Issue`` is the record for file-level findings and
for code that produces a handful of them.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

Severity = Literal["error", "warning"]
Mode = Literal["add-only", "add-remove"]

# Columns of an issues frame: `row` is the spreadsheet row (header = 1) or <NA> for a
# file-level issue; `column` is the header as uploaded (canonical when the column is absent).
ISSUE_COLUMNS = ["row", "email", "column", "code", "severity", "message", "value"]

OPERATION_KINDS = (
    "add_user",
    "modify_user",
    "delete_user",
    "claim_user",
    "assign_license",
    "remove_license",
)

CUSTOMER_OPERATION_KINDS = (
    "create_customer",
    "attach_customer",
    "request_approval",
    "update_customer",
)


class Status(enum.StrEnum):
    """Outcome of a job; its exit code is fixed by SPEC section 7."""

    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def exit_code(self) -> int:
        return {"COMPLETED": 0, "COMPLETED_WITH_ERRORS": 1, "REJECTED": 3, "FAILED": 5}[self.value]


class ExitCode(enum.IntEnum):
    """Process exit codes of SPEC section 7."""

    OK = 0
    ROWS_REJECTED = 1
    USAGE = 2
    FILE_REJECTED = 3
    STALE_OR_BUSY = 4
    FAILED = 5


@dataclass(frozen=True)
class Issue:
    """One finding on one row (``row`` set) or on the whole file (``row`` None)."""

    code: str
    message: str
    row: int | None = None
    column: str = ""
    severity: Severity = "error"
    value: str = ""
    email: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def issues_frame(issues: list[Issue] | None = None) -> pd.DataFrame:
    """An issues DataFrame (``ISSUE_COLUMNS``) from a list of ``Issue`` records."""
    import pandas as pd

    records = [i.to_dict() for i in issues or []]
    frame = pd.DataFrame.from_records(records, columns=ISSUE_COLUMNS)
    frame["row"] = frame["row"].astype("Int64")
    return frame


class FileRejected(Exception):
    """The file as a whole is rejected (exit 3); carries the file-level issues."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(i.message for i in issues))
        self.issues = issues


class UsageError(Exception):
    """A mistake of use (exit 2): one clear line, never a traceback."""


class StaleOrBusy(Exception):
    """The org changed since a plan was made, or another job holds the org (exit 4)."""


class Refused(Exception):
    """A command refused for a reason of the domain (exit 1), e.g. an order assigned twice."""


@dataclass
class Column:
    """One column of the uploaded file and what the catalogue made of its header.

    ``kind`` is one of ``field``, ``package``, ``basic``, ``product``, ``readonly``,
    ``unknown``; ``key`` is the field or license id (None for read-only and unknown columns).
    """

    index: int
    header: str
    kind: str
    key: str | None = None
    subscription: str | None = None
    suspended: bool = False


@dataclass
class Table:
    """A file read into text: what the reader hands to validation.

    ``frame`` has one column per uploaded column (named by position, 0..n-1, so duplicate
    headers survive), every cell a trimmed string ("" for empty), and its index is the
    spreadsheet row number; blank rows are already gone. ``numeric`` marks cells that an
    XLSX stored as numbers (same shape as ``frame``), or is None for CSV.
    """

    header: list[str]
    frame: pd.DataFrame
    columns: list[Column]
    encoding: str | None = None
    delimiter: str | None = None
    kind: Literal["csv", "xlsx"] = "csv"
    sheet: str | None = None
    numeric: pd.DataFrame | None = None
    issues: list[Issue] = field(default_factory=list)

    def column_for(self, key: str) -> Column | None:
        """The uploaded column that maps to field or license ``key``, if any."""
        for col in self.columns:
            if col.key == key:
                return col
        return None


@dataclass
class Options:
    """Everything a job was asked to do, passed down as one object (black's ``Mode``)."""

    file: Path | None = None
    org: str | None = None
    mode: Mode = "add-only"
    dry_run: bool = True
    report_dir: Path | None = None
    sheet: str | None = None
    max_rows: int = 1_000_000
    max_bytes: int = 512 * 1024 * 1024
    max_deletes: int | None = None
    max_issues: int = 100_000
    source: str = "cli"


@dataclass
class Plan:
    """Operations a job would carry out, in order.

    ``operations`` is a DataFrame with columns ``op``, ``row``, ``email``, ``license`` and
    ``data`` (a dict: ``attributes`` for add/claim, ``changes`` for modify, else empty).
    """

    org: str | None
    mode: Mode
    state_version: int | None
    sha256: str | None
    operations: pd.DataFrame

    def counts(self, kinds: tuple[str, ...] = OPERATION_KINDS) -> dict[str, int]:
        counted: Any = self.operations["op"].value_counts() if len(self.operations) else {}
        return {k: int(counted.get(k, 0)) for k in kinds}


PLAN_COLUMNS = ["op", "row", "email", "license", "data"]


def empty_operations() -> pd.DataFrame:
    """An operations frame with no operations."""
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS})


ProgressCallback = Any  # Callable[[str, int, int], None]: (stage, done, total); sqlfluff-style


@dataclass
class RowCounts:
    total: int = 0
    valid: int = 0
    rejected: int = 0
    unchanged: int = 0
    with_warnings: int = 0


@dataclass
class Result:
    """One job's outcome: owns the counts, the status, the exit code (black's ``Report``).

    ``issues`` may be capped (``Options.max_issues``); ``issue_counts`` is always complete.
    """

    job_id: str
    options: Options
    status: Status
    file: str = ""
    sha256: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    rows: RowCounts = field(default_factory=RowCounts)
    operations: dict[str, int] = field(default_factory=dict)
    issue_counts: dict[str, int] = field(default_factory=dict)
    issues: pd.DataFrame = field(default_factory=issues_frame)
    state_version: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    table: Table | None = None
    plan: Plan | None = None
    kind: str = "users"
    notes: list[str] = field(default_factory=list)
    # One line per rejected row (row, email, message joined), from the complete issues.
    row_errors: pd.DataFrame | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def summary(self) -> dict[str, Any]:
        """``summary.json`` exactly as SPEC section 7 lists it."""
        customers = self.kind == "customers"
        return {
            "job_id": self.job_id,
            "file": self.file,
            "sha256": self.sha256,
            "org": None if customers else self.options.org,
            "mode": None if customers else self.options.mode,
            "dry_run": self.options.dry_run,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "status": self.status.value,
            "rows": asdict(self.rows),
            "operations": dict(self.operations),
            "issues": dict(self.issue_counts),
            "state_version": None if customers else self.state_version,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
