"""``customers`` and ``templates``: provisioning customer orgs by file (SPEC section 11).

Thin like the rest of the command line: each command turns its options into an ``Options`` or
one call of ``csvimport.customers`` and prints what comes back. Exit codes are the users'
(SPEC 7): a refused ``approve`` is 1 (``Refused``), an unknown customer a usage error (2).
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from csvimport.model import Options, Result, UsageError
from csvimport.terminal import Progress, print_result

FORMAT = click.Choice(["text", "json"])
# (name, click keyword arguments) of the options `customers validate` and `apply` share.
_FILE_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--report-dir", {"type": click.Path(file_okay=False, path_type=Path), "default": None}),
    ("--format", {"type": FORMAT, "default": "text", "help": "json: the summary alone"}),
    ("--sheet", {"default": None, "help": "XLSX worksheet (default: first visible)"}),
    ("--max-rows", {"type": click.IntRange(min=1), "default": Options.max_rows}),
    ("--max-bytes", {"type": click.IntRange(min=1), "default": Options.max_bytes}),
    ("--max-issues", {"type": click.IntRange(min=1), "default": Options.max_issues}),
)


def _file_command(func: Any) -> Any:
    """FILE and the options of a customers job."""
    for name, kwargs in reversed(_FILE_OPTIONS):
        func = click.option(name, show_default=True, **kwargs)(func)
    return click.argument("file", type=click.Path(path_type=Path))(func)


def _job(ctx: Any, file: Path, dry_run: bool, kw: dict[str, Any]) -> None:
    from csvimport import customers

    fmt = kw.pop("format")
    options = Options(file=file, dry_run=dry_run, **kw)
    with closing(Progress(enabled=fmt == "text")) as progress:
        result = customers.run(options, db=ctx.engine, progress=progress)
    _report(result, fmt)
    from csvimport.cli import exit_after_job

    exit_after_job(ctx, result.exit_code)


def _report(result: Result, fmt: str) -> None:
    """The human summary, or with ``--format json`` the summary alone (SPEC 8)."""
    if fmt == "text":
        print_result(result)
        return
    click.echo(json.dumps(result.summary(), ensure_ascii=False))


@click.group()
def customers() -> None:
    """Customer orgs: validate and apply customer files, approve, list, show."""


@customers.command("validate")
@_file_command
@click.pass_obj
def customers_validate(ctx: Any, /, file: Path, **kw: Any) -> None:
    """Dry run of a customer file: every problem and the would-be operations."""
    _job(ctx, file, True, kw)


@customers.command("apply")
@_file_command
@click.pass_obj
def customers_apply(ctx: Any, /, file: Path, **kw: Any) -> None:
    """Create, attach and update the customers of the file's valid rows."""
    _job(ctx, file, False, kw)


@customers.command("approve")
@click.argument("external_id")
@click.pass_obj
def customers_approve(ctx: Any, external_id: str) -> None:
    """Attach a customer waiting for its org's approval (pending_approval)."""
    from csvimport import customers as engine
    from csvimport.customers.store import CustomerNotFound

    try:
        done = engine.approve(ctx.engine, external_id)
    except CustomerNotFound as exc:
        raise UsageError(str(exc)) from exc
    click.echo(
        f"customer {external_id} approved: attached to org {done['org_id']}, "
        f"partner role {done['partner_role']}"
    )


def _show(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for c in rows:
        click.echo(
            f"{c['external_id']:<20} {c['status']:<17} org {c['org_id'] or '-':<20} "
            f"{c['partner_role'] or '-':<18} {c['provisioning_id']:<14} "
            f"{','.join(c['packages'])}  {c['company_name']}"
        )


@customers.command("list")
@click.option("--format", "fmt", type=FORMAT, default="text")
@click.pass_obj
def customers_list(ctx: Any, fmt: str) -> None:
    """Every customer with its status, and its org id once provisioned."""
    from csvimport.customers.store import list_customers

    _show(list_customers(ctx.engine), fmt)


@customers.command("show")
@click.argument("external_id")
@click.option("--format", "fmt", type=FORMAT, default="text")
@click.pass_obj
def customers_show(ctx: Any, external_id: str, fmt: str) -> None:
    """One customer: status, org, partner role, packages and limits, address."""
    from csvimport.customers.store import VIEW_KEYS, CustomerNotFound, get_customer

    try:
        c = get_customer(ctx.engine, external_id)
    except CustomerNotFound as exc:
        raise UsageError(str(exc)) from exc
    if fmt == "json":  # the same object as `list` gives (SPEC 11); details are for people
        click.echo(json.dumps({k: c[k] for k in VIEW_KEYS}, ensure_ascii=False))
        return
    _show([c], fmt)
    limits = ", ".join(f"{p} {'unlimited' if q is None else q}" for p, q in c["limits"].items())
    click.echo(f"  admin {c['admin_email']}; limits {limits or '-'}")
    click.echo(f"  address {', '.join(c['address'].values()) or '-'}")
    if c["status"] == "pending_approval":
        click.echo(
            f"  waiting for the approval of org {c['target_org_id']}: "
            f"then 'customers approve {c['external_id']}'"
        )


@click.group()
def templates() -> None:
    """Onboarding templates (seed 002): load and list."""


@templates.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def templates_load(ctx: Any, file: Path) -> None:
    """Add the file's templates, replacing those with the same provisioning_id."""
    from csvimport.customers.templates import load_templates
    from csvimport.store.orgfile import OrgFileError

    try:
        ids = load_templates(ctx.engine, file)
    except OrgFileError as exc:
        raise UsageError(str(exc)) from exc
    click.echo(f"loaded {len(ids)} template(s): {', '.join(ids)}")


@templates.command("list")
@click.option("--format", "fmt", type=FORMAT, default="text")
@click.pass_obj
def templates_list(ctx: Any, fmt: str) -> None:
    """Every template: provisioning id, name, country, language, authentication."""
    from csvimport.customers.templates import list_templates

    found = list_templates(ctx.engine)
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    for t in found:
        click.echo(
            f"{t['provisioning_id']:<16} {t['name']:<24} {t['country'] or '-':<3} "
            f"{t['language'] or '-':<6} {t['authentication']:<6} {t['timezone'] or '-'}"
        )


def register(main: click.Group) -> None:
    """Add this module's commands to the main group."""
    main.add_command(customers)
    main.add_command(templates)
