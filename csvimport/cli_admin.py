"""Commands about state rather than files: ``org``, ``orders``, ``jobs``, ``template``.

Each is a thin wrapper over one store call, printing its answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from csvimport import catalog as catalog_mod
from csvimport import report
from csvimport.model import UsageError


def _snapshot(ctx: Any, org: str) -> Any:
    from csvimport.store.snapshot import OrgNotFound, load_snapshot

    try:
        return load_snapshot(ctx.engine, org)
    except OrgNotFound as exc:
        raise UsageError(str(exc)) from exc


def write_table(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    dropdowns: dict[int, list[str]] | None = None,
) -> None:
    """A CSV (UTF-8 BOM, comma) or XLSX file, chosen by the suffix of ``path``."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        report.write_xlsx(
            path, header, rows, dropdowns=dropdowns, max_rows=max(1000, len(rows) + 500)
        )
    elif suffix == ".csv":
        report.write_csv(path, header, rows)
    else:
        raise UsageError(f"{path}: the output must end in .csv or .xlsx")


@click.group()
def org() -> None:
    """Organisations: load, show, export."""


@org.command("load")
@click.argument("org_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def org_load(ctx: Any, org_file: Path) -> None:
    """Create an org, or replace its whole state, from a YAML or JSON org file."""
    from csvimport.store.orgfile import OrgFileError, load_org_file

    try:
        org_id = load_org_file(ctx.engine, org_file)
    except OrgFileError as exc:
        raise UsageError(str(exc)) from exc
    snap = _snapshot(ctx, org_id)
    click.echo(f"loaded org {org_id}: {len(snap.users)} users, state version {snap.state_version}")


@org.command("show")
@click.argument("org_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def org_show(ctx: Any, org_id: str, fmt: str) -> None:
    """Settings, and per pool: total, used, remaining."""
    snap = _snapshot(ctx, org_id)
    s = snap.settings
    pools = [_pool(p) for p in snap.pools.to_dict("records")]
    if fmt == "json":
        out = dict(s.__dict__)
        out.update(
            users=len(snap.users),
            locations=sorted(snap.locations),
            sites=sorted(snap.sites),
            pools=pools,
        )
        click.echo(json.dumps(out, default=list))
        return
    click.echo(f"org {s.id} ({s.name}), {s.kind}, package {s.package or '-'}")
    click.echo(f"  state version {s.state_version}")
    click.echo(
        f"  users {len(snap.users)}; directory sync {'on' if s.directory_sync else 'off'}; "
        f"integrations {', '.join(s.integrations) or '-'}"
    )
    click.echo(f"  locations {', '.join(sorted(snap.locations)) or '-'}")
    click.echo(f"  sites {', '.join(sorted(snap.sites)) or '-'}")
    for p in pools:
        click.echo(
            f"  pool {p['license']:<24} {p['status']:<9} total {p['total']:>9} used {p['used']:>7} "
            f"remaining {p['remaining']:>9}"
            + (f"  order {p['order']}" if p["order"] else "")
            + (f"  sub {p['subscription']}" if p["subscription"] else "")
        )


def _pool(p: dict[str, Any]) -> dict[str, Any]:
    qty = p["quantity"]
    unlimited = qty != qty  # NaN
    return {
        "license": p["license"],
        "status": p["status"],
        "order": p["order"],
        "subscription": p["subscription"],
        "total": "unlimited" if unlimited else int(qty),
        "used": int(p["used"]),
        "remaining": "unlimited" if unlimited else int(qty) - int(p["used"]),
    }


@org.command("export")
@click.argument("org_id")
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def org_export(ctx: Any, org_id: str, output: Path) -> None:
    """An import-ready file of every user (CSV or XLSX)."""
    from csvimport.store.export import org_rows

    snap = _snapshot(ctx, org_id)
    header, rows = org_rows(snap, catalog_mod.default())
    write_table(output, header, rows, _dropdowns(header, snap))
    click.echo(f"exported {len(rows)} users of {org_id} to {output}")


def _dropdowns(header: list[str], snap: Any) -> dict[int, list[str]]:
    """TRUE/FALSE lists on boolean columns; the org's locations on Location."""
    cat = catalog_mod.default()
    out: dict[int, list[str]] = {}
    for i, h in enumerate(header):
        kind = cat.match_header(h)
        if kind is None:
            continue
        if kind[0] in ("package", "basic", "product") or (
            kind[1] in cat.fields and cat.fields[kind[1]].type == "boolean"
        ):
            out[i] = ["TRUE", "FALSE"]
        elif kind[1] == "location" and snap is not None and snap.locations:
            out[i] = sorted(snap.locations)
    return out


@click.command()
@click.option("--org", "org_id", default=None)
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def template(ctx: Any, org_id: str | None, output: Path) -> None:
    """The import header with no users (XLSX with drop-downs)."""
    from csvimport.store.export import org_header

    snap = _snapshot(ctx, org_id) if org_id else None
    header = org_header(snap, catalog_mod.default())
    write_table(output, header, [], _dropdowns(header, snap))
    click.echo(f"wrote template {output} ({len(header)} columns)")


@click.group()
def orders() -> None:
    """The partner's orders (seed 003): load, list, assign."""


@orders.command("load")
@click.argument("orders_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def orders_load(ctx: Any, orders_file: Path) -> None:
    from csvimport.store.orders import load_orders

    count = load_orders(ctx.engine, orders_file)
    click.echo(f"loaded {count} orders")


@orders.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def orders_list(ctx: Any, fmt: str) -> None:
    from csvimport.store.orders import list_orders

    found = list_orders(ctx.engine)
    if fmt == "json":
        click.echo(json.dumps([dict(o.__dict__, status=o.status) for o in found]))
        return
    for o in found:
        click.echo(f"{o.id:<12} {o.license:<20} {o.quantity:>7}  {o.status}")


@orders.command("assign")
@click.argument("order_id")
@click.option("--org", "org_id", required=True)
@click.pass_obj
def orders_assign(ctx: Any, order_id: str, org_id: str) -> None:
    from csvimport.store.orders import assign_order

    assign_order(ctx.engine, order_id, org_id)
    click.echo(f"assigned order {order_id} to {org_id}")


@click.group()
def jobs() -> None:
    """Jobs and their outcomes."""


@jobs.command("list")
@click.option("--org", "org_id", default=None)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def jobs_list(ctx: Any, org_id: str | None, fmt: str) -> None:
    from csvimport.store import jobs as store_jobs

    found = store_jobs.list_jobs(ctx.engine, org=org_id)
    if fmt == "json":
        click.echo(json.dumps([j.to_dict() for j in found]))
        return
    for j in found:
        where = f" {j.folder}/{j.file}" if j.folder else f" {j.file or ''}"
        click.echo(
            f"{j.id}  {j.created_at:%Y-%m-%d %H:%M:%S}  {j.org or '-':<12} {j.source:<5} "
            f"{'dry-run' if j.dry_run else 'apply':<7} {j.status:<22}{where}"
        )


@jobs.command("show")
@click.argument("job_id")
@click.pass_obj
def jobs_show(ctx: Any, job_id: str) -> None:
    from csvimport.store import jobs as store_jobs

    try:
        info = store_jobs.get_job(ctx.engine, job_id)
    except LookupError as exc:
        raise UsageError(f"no job {job_id}") from exc
    click.echo(json.dumps(info.to_dict(), indent=2, default=str))


def register(main: click.Group) -> None:
    for command in (org, orders, jobs, template):
        main.add_command(command)
