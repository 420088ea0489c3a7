"""The command line (SPEC section 8): click commands, options, printing and exit codes.

Thin on purpose: every command parses its options into an ``Options`` or a store call and
prints what comes back. Mistakes of use are one clear line and exit 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from csvimport import arrowpool
from csvimport.model import ExitCode, Options, Refused, StaleOrBusy, UsageError
from csvimport.prefetch import Prefetch
from csvimport.terminal import Progress, print_result

MODES = click.Choice(["add-only", "add-remove"])


class Context:
    """What the group passes down: the database URL, opened on first use."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from csvimport.store.db import connect

            self._engine = connect(self.url)
        return self._engine

    def close(self) -> None:
        """Close the pooled connections, if the database was opened."""
        if self._engine is not None:
            self._engine.dispose()


def entry() -> None:
    """The ``csvimport`` console script: ``main``, with the end of a job made immediate.

    Why: once a job has written its reports and printed its summary, all that is left is the
    interpreter's teardown, which frees the job's frames and Arrow buffers piece by piece:
    ~0.45 s after a million-row file, for nothing the administrator sees. Commands that ran
    a job end through ``exit_after_job``, which flushes and leaves with ``os._exit``. Only
    this console script asks for that: tests and other in-process callers of ``main`` keep
    the ordinary ``SystemExit``.
    """
    _hard_exit.append(True)
    main()


_hard_exit: list[bool] = []


def exit_after_job(ctx: Context, code: int) -> NoReturn:
    """End a command whose job is done, its reports written and its summary printed.

    From the console script: output flushed, log handlers closed and the database's
    connections closed (SQLite checkpoints its WAL on the last close), then ``os._exit``.
    Otherwise ``sys.exit``."""
    if not _hard_exit:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    ctx.close()
    os._exit(code)


def _fail(message: str, code: int) -> None:
    click.echo(f"csvimport: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns the domain's exceptions into one line and the SPEC exit code.

    The command groups of other modules are registered on first need (``_register``): a
    ``validate`` never imports SQLAlchemy, openpyxl or the store for commands it does not run
    (~0.35 s of a 1M-row validate's start-up).
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and _register():
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _fail(str(exc), ExitCode.USAGE)
        except StaleOrBusy as exc:
            _fail(str(exc), ExitCode.STALE_OR_BUSY)
        except Refused as exc:
            _fail(str(exc), ExitCode.ROWS_REJECTED)
        except (ValueError, OSError) as exc:
            if isinstance(exc, click.ClickException):
                raise
            _fail(str(exc), ExitCode.USAGE)
        return None


@click.group(cls=Group)
@click.option(
    "--db",
    envvar="CSVIMPORT_DB",
    default=None,
    help="SQLAlchemy URL (default: sqlite csvimport.db)",
)
@click.version_option(package_name="csvimport")
@click.pass_context
def main(ctx: click.Context, db: str | None) -> None:
    """Bulk user import for Webex / Mitel partner portals."""
    arrowpool.configure()
    ctx.obj = Context(db)


def job_options(func: Any) -> Any:
    """Options shared by ``validate`` and ``apply``."""
    decorators = [
        click.option("--org", default=None, help="the customer org (enables the org checks)"),
        click.option("--mode", type=MODES, default="add-only", show_default=True),
        click.option(
            "--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None
        ),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text"),
        click.option("--sheet", default=None, help="XLSX worksheet (default: first visible)"),
        click.option(
            "--max-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True
        ),
        click.option(
            "--max-bytes", type=click.IntRange(min=1), default=512 * 1024 * 1024, show_default=True
        ),
        click.option("--max-deletes", type=click.IntRange(min=0), default=None),
        click.option(
            "--max-issues", type=click.IntRange(min=1), default=100_000, show_default=True
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _options(file: Path, dry_run: bool, **kw: Any) -> Options:
    return Options(
        file=file,
        org=kw["org"],
        mode=kw["mode"],
        dry_run=dry_run,
        report_dir=kw["report_dir"],
        sheet=kw["sheet"],
        max_rows=kw["max_rows"],
        max_bytes=kw["max_bytes"],
        max_deletes=kw["max_deletes"],
        max_issues=kw["max_issues"],
    )


def _run_job(ctx: Context, options: Options, fmt: str) -> None:
    # The file is read, parsed (a CSV) and hashed on a second core while the engine and the
    # database open.
    assert options.file is not None
    prefetched = Prefetch(options.file, options.max_bytes, parse=True)
    from csvimport import engine

    progress = Progress(enabled=fmt == "text")
    db = ctx.engine if options.org is not None else None
    try:
        result = engine.run(options, db=db, progress=progress, prefetched=prefetched)
    finally:
        progress.close()
    if fmt == "json":
        click.echo(json.dumps(result.summary(), ensure_ascii=False))
    else:
        print_result(result)
    exit_after_job(ctx, result.exit_code)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@job_options
@click.pass_obj
def validate(ctx: Context, /, file: Path, fmt: str, **kw: Any) -> None:
    """Dry run: every problem and the would-be operations; never writes state."""
    _run_job(ctx, _options(file, True, **kw), fmt)


@main.command()
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@job_options
@click.pass_obj
def apply(ctx: Context, /, file: Path | None, plan_file: Path | None, fmt: str, **kw: Any) -> None:
    """Carry out the operations of the valid rows (or of a reviewed plan)."""
    if plan_file is not None:
        if file is not None:
            raise UsageError("give either FILE or --plan, not both")
        from csvimport import planfile

        result = planfile.apply_reviewed(ctx.engine, plan_file, kw["report_dir"])
        if fmt == "json":
            click.echo(json.dumps(result.summary(), ensure_ascii=False))
        else:
            print_result(result)
        exit_after_job(ctx, result.exit_code)
    if file is None:
        raise UsageError("apply needs FILE (with --org) or --plan PLAN")
    if kw["org"] is None:
        raise UsageError("apply needs --org ORG: the organisation to change")
    _run_job(ctx, _options(file, False, **kw), fmt)


_registered: list[bool] = []


def _register() -> bool:
    """Command groups live in modules of their own; each adds its commands here, once.

    Returns whether this call registered them (False when they already were)."""
    if _registered:
        return False
    _registered.append(True)
    from csvimport import cli_admin, cli_batch, cli_customers

    for module in (cli_admin, cli_batch, cli_customers):
        module.register(main)
    return True
