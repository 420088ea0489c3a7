"""What a person sees on a terminal: progress on long work and the human summary.

Progress goes to stderr and only when stderr is a terminal, so pipes, cron and
``--format json`` stay clean. The engine calls it as a plain ``(stage, done, total)`` callback.
"""

from __future__ import annotations

import sys
import time

import click

from csvimport.model import Result, Status

WORDS = {
    "add_user": "add",
    "modify_user": "modify",
    "delete_user": "delete",
    "claim_user": "claim",
    "assign_license": "assign licenses",
    "remove_license": "remove licenses",
    "create_customer": "create",
    "attach_customer": "attach",
    "request_approval": "request approval for",
    "update_customer": "update",
}
SHOWN_ISSUES = 15


class Progress:
    """A one-line progress display on stderr, redrawn at most ten times a second."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        pct = f" {100 * done // total:3d}%" if total else ""
        line = f"\r{stage:<10} {done:>10,}/{total:,}{pct}" if total > 1 else f"\r{stage:<10} …"
        sys.stderr.write(line.ljust(48))
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * 48 + "\r")
            sys.stderr.flush()


def print_result(result: Result) -> None:
    """The short human summary: counts, operations ("would …" in a dry run), first issues."""
    s = result.summary()
    where = f" for org {s['org']}" if s.get("org") else ""
    enc = f" ({s['encoding']}, delimiter {s['delimiter']!r})" if s.get("encoding") else ""
    click.echo(f"{s['file']}{enc}{where}: {s['status']}")
    rows = s["rows"]
    click.echo(
        f"  rows: {rows['total']} total, {rows['valid']} valid, {rows['rejected']} rejected, "
        f"{rows['unchanged']} unchanged, {rows['with_warnings']} with warnings"
    )
    _print_operations(result)
    for note in result.notes:
        click.echo(f"  note: {note}")
    _print_issues(result)


def _print_operations(result: Result) -> None:
    if result.status == Status.REJECTED:
        return
    done = [(k, v) for k, v in result.operations.items() if v]
    if not done:
        click.echo("  no changes" + (" would be made" if result.options.dry_run else " made"))
        return
    verb = "would " if result.options.dry_run else ""
    parts = ", ".join(f"{WORDS.get(k, k)} {v}" for k, v in done)
    click.echo(f"  {verb}{parts}" if verb else f"  done: {parts}")


def _print_issues(result: Result) -> None:
    if result.issues.empty:
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.issue_counts.items()))
    click.echo(f"  issues: {counts}")
    for issue in result.issues.head(SHOWN_ISSUES).itertuples(index=False):
        where = "file" if str(issue.row) in ("None", "<NA>") else f"row {issue.row!s}"
        click.echo(f"  {where:>9} {issue.severity!s:<7} {issue.code!s}: {issue.message!s}")
    more = len(result.issues) - SHOWN_ISSUES
    if more > 0:
        click.echo(f"  … and {more} more (see issues.csv with --report-dir)")
