"""``watch``: the drop-folder worker's command (SPEC section 10).

The command owns what a process owns: options, signals, the JSON log on stderr and the exit
code; ``csvimport.batch`` owns folders, claims and moves. The first SIGTERM or Ctrl-C lets the
job in flight finish and then exits 0; a second Ctrl-C stops at once (the job is recovered by
the next worker). ``--once`` exits 0 whatever the files' outcomes: the reports say them; only a
bad DIR (2) or an unreachable database (5) make it fail.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from csvimport.model import ExitCode, UsageError


def _emit(line: dict[str, Any]) -> None:
    """One JSON object per line on stderr, ASCII only (safe for any terminal or journal)."""
    click.echo(json.dumps(line, ensure_ascii=True, default=str), err=True)


def _database_down(ctx: Any, exc: Exception) -> None:
    from sqlalchemy import make_url

    from csvimport.store.db import database_url

    url = make_url(database_url(ctx.url)).render_as_string(hide_password=True)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    click.echo(f"csvimport: cannot use the database {url}: {first}", err=True)
    sys.exit(ExitCode.FAILED)


def _on_signals(worker: Any) -> None:
    """First SIGTERM/SIGINT: stop after the job in flight; a second SIGINT: stop now."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if worker.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        worker.log("stopping", signal=signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Take every eligible file, then exit (for cron).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between passes when nothing was found.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds a file must stay unchanged before it is taken.",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds of silence after which a worker on another host counts as gone.",
)
@click.pass_obj
def watch(
    ctx: Any, directory: Path, once: bool, interval: float, settle: float, stale_after: float
) -> None:
    """Serve DIR/<org>/inbox/ (apply) and DIR/<org>/validate/ (dry run)."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    try:
        db = ctx.engine  # before the engine's slow imports: a dead database fails fast
        from csvimport import batch

        settings = batch.Settings(
            root=directory.resolve(),
            once=once,
            interval=interval,
            settle=settle,
            stale_after=stale_after,
        )
        worker = batch.Worker(db, settings, _emit)
        _on_signals(worker)
        worker.run()
    except SQLAlchemyError as exc:
        _database_down(ctx, exc)
    sys.exit(ExitCode.OK)


def register(main: click.Group) -> None:
    """Add this module's commands to the main group."""
    main.add_command(watch)
