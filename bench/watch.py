"""Drop-folder throughput: files/s and rows/s of real ``csvimport watch`` workers.

Why it looks like this:

- What an operator would see: 100 files of 1,000 rows are dropped at once into the inboxes of
  ten orgs, then N ``watch --once`` processes are started side by side and timed from their
  start to their exit (start-up, claims, engine, reports and moves all count).
- Ten orgs, because jobs of one org run one at a time: a second worker can only help when there
  is another org to work on. Each org holds 5,000 users from ``bench.gen`` and its files are
  slices of one users file generated against that org (half modified, a sixth unchanged, a
  third new users, no defects), so every job plans and applies real operations.
- The inputs are generated once; each worker count gets a fresh database and a fresh copy.
  Files that did not end in ``done/`` are counted and named in the line: a throughput of
  rejected files would flatter the engine.
- SQLite by default (a file in a fresh temporary folder); ``bench_watch(url)`` with a PostgreSQL
  URL runs in a schema of its own, dropped afterwards.

Run: ``.venv/bin/python -m bench.watch [URL]``; ``bench.run`` calls ``bench_watch()``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import gen

CLI = Path(sys.executable).with_name("csvimport")
ORGS = 10
ORG_USERS = 5_000


def bench_watch(
    url: str | None = None,
    files: int = 100,
    rows: int = 1_000,
    workers: tuple[int, ...] = (1, 2),
) -> list[str]:
    """One printable line per worker count: files/s and rows/s."""
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as inputs:
        template = _prepare(Path(inputs), files, rows)
        return [_measure(url, template, count, rows) for count in workers]


def _measure(url: str | None, template: Path, count: int, rows: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, _database(url, tmp) as db:
        _load_orgs(db, sorted(template.glob("*.json")))
        root = Path(tmp) / "drop"
        shutil.copytree(template / "drop", root)
        seconds = _run_workers(db, root, count)
        done = len(list(root.glob("*/done/*")))
        failed = len(list(root.glob("*/failed/*")))
    note = f", {failed} FAILED" if failed else ""
    return (
        f"watch  {count} worker{'s' if count > 1 else ' '}: {done} files x {rows:,} rows "
        f"in {seconds:6.1f} s = {done / seconds:6.1f} files/s, "
        f"{done * rows / seconds:9,.0f} rows/s ({_backend(db)}{note})"
    )


def _backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


@contextmanager
def _database(url: str | None, tmp: str) -> Iterator[str]:
    if url is None or not url.startswith("postgresql"):
        yield url or f"sqlite:///{tmp}/watch.db"
        return
    from sqlalchemy import create_engine, make_url, text

    schema = f"bench_watch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _load_orgs(db: str, org_files: list[Path]) -> None:
    from csvimport.store.db import connect
    from csvimport.store.orgfile import load_org_file

    engine = connect(db)
    for org_file in org_files:
        load_org_file(engine, org_file)
    engine.dispose()


def _prepare(tmp: Path, files: int, rows: int) -> Path:
    """Org files and ``files`` users files in ``tmp/drop/<org>/inbox/``; returns ``tmp``."""
    per_org = -(-files // ORGS)
    made = 0
    for i in range(ORGS):
        org, count = f"bench{i}", min(per_org, files - made)
        gen.write_org(tmp / f"{org}.json", users=ORG_USERS, org=org)
        big = tmp / f"{org}.csv"
        gen.write_users(big, rows=count * rows, seed=1, org=org, org_users=ORG_USERS)
        _split(big, tmp / "drop" / org / "inbox", rows)
        big.unlink()
        made += count
    return tmp


def _split(path: Path, inbox: Path, rows: int) -> None:
    """``path`` cut into files of ``rows`` rows, each with the header."""
    inbox.mkdir(parents=True)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        chunk: list[list[str]] = []
        for number, record in enumerate(reader, 1):
            chunk.append(record)
            if len(chunk) == rows:
                _write(inbox / f"users-{number // rows:04}.csv", header, chunk)
                chunk = []
        if chunk:
            _write(inbox / "users-last.csv", header, chunk)


def _write(path: Path, header: list[str], records: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(records)


def _run_workers(db: str, root: Path, count: int) -> float:
    """Seconds from starting ``count`` ``watch --once`` workers until the last one exits."""
    cmd = [str(CLI), "--db", db, "watch", str(root), "--once", "--settle", "0"]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for _ in range(count)]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"watch workers exited with {codes}")
    return seconds


if __name__ == "__main__":
    for line in bench_watch(sys.argv[1] if len(sys.argv) > 1 else None):
        print(line)
