"""``make bench``: wall time and peak memory of the real CLI on generated files.

Why it looks like this:

- Every figure comes from a subprocess running the installed ``csvimport`` command, exactly
  what an administrator runs, so start-up, imports and report writing are all counted.
- Peak memory is measured per process: ``/usr/bin/time -v`` when present (the kernel's maxrss
  of that one child), else psutil polling of the child's tree every 20 ms.
  ``getrusage(RUSAGE_CHILDREN)`` is not used: it is a maximum over all children ever waited
  for, so a second measurement would inherit the first one's peak.
- Beside each validate sits the same file read by a bare ``pandas.read_csv(engine="pyarrow")``
  in the same way: the ratio validate/bare says how much the engine costs over merely reading.
- Measurements are plain functions in ``MEASUREMENTS``; one that cannot run (no CLI yet, a
  usage error, no PostgreSQL) prints ``skipped: <reason>`` and the run goes on. Nothing here
  ever makes the run crash: a benchmark that dies on the first missing feature measures nothing.
- Generated inputs are cached in ``bench/data/`` (gitignored) by name; ``--regen`` rebuilds.

Usage::

    python -m bench.run                 # 100k and 1M rows, median of 3
    python -m bench.run --quick         # 10k rows, one run: a smoke test
    python -m bench.run --runs 5 --only validate,bare_read
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import gen

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
BIN = Path(sys.executable).parent
CLI = BIN / "csvimport"
GNU_TIME = Path("/usr/bin/time")
PG_URL = os.environ.get("CSVIMPORT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SEED = 1
BAD = 0.05
BARE_READ = "import sys, pandas as pd; pd.read_csv(sys.argv[1], engine='pyarrow', dtype=str)"


class Skip(Exception):
    """A measurement that cannot run now; the message says why."""


@dataclass
class Sample:
    """One process run: wall seconds, peak resident MiB, exit code and output."""

    seconds: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Result:
    """One line of the final table."""

    name: str
    rows: int
    runs: int = 0
    seconds: float | None = None
    peak_mib: float | None = None
    note: str = ""
    baseline: str | None = None  # name of the result this one is compared with
    ratio: float | None = None

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.seconds else None


@dataclass
class Context:
    """What every measurement gets: options, and files generated on demand (cached)."""

    runs: int
    regen: bool
    work: Path
    results: list[Result] = field(default_factory=list)

    def users_file(self, rows: int) -> Path:
        """Rows with 5 % defects, no org: what `validate FILE` sees in the field."""
        path = DATA / f"users-{rows}-s{SEED}-b{BAD}.csv"
        return self._cached(path, lambda: gen.write_users(path, rows, SEED, BAD))

    def org_file(self, users: int) -> Path:
        path = DATA / f"org-{users}-s{SEED}.json"
        return self._cached(path, lambda: gen.write_org(path, users, SEED))

    def org_users_file(self, rows: int) -> Path:
        """Rows overlapping ``org_file(rows)``: half modified, a third new, a sixth unchanged."""
        path = DATA / f"users-{rows}-s{SEED}-org{rows}.csv"
        return self._cached(path, lambda: gen.write_users(path, rows, SEED, 0.0, org_users=rows))

    def _cached(self, path: Path, make: Callable[[], Any]) -> Path:
        if self.regen or not path.exists():
            DATA.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            make()
            print(f"  generated {path.name} in {time.perf_counter() - start:.1f}s", flush=True)
        return path

    def report_dir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))


# --- running one process ----------------------------------------------------------------------
def run_measured(cmd: Sequence[str], cwd: Path = ROOT) -> Sample:
    """Run ``cmd`` once; its wall time and its own peak RSS."""
    if GNU_TIME.exists():
        with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
            stats = Path(tf.name)
        try:
            start = time.perf_counter()
            proc = subprocess.run(
                [str(GNU_TIME), "-v", "-o", str(stats), *cmd],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - start
            text = stats.read_text(errors="replace")
        finally:
            stats.unlink(missing_ok=True)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        peak = int(found.group(1)) / 1024 if found else float("nan")
        if proc.returncode == 127 and "Command exited with non-zero status" not in text:
            raise Skip(f"{cmd[0]} not found")
        return Sample(seconds, peak, proc.returncode, proc.stdout, proc.stderr)
    return _run_polled(cmd, cwd)


def _run_polled(cmd: Sequence[str], cwd: Path) -> Sample:
    """Fallback without GNU time: poll the RSS of the child and its children every 20 ms."""
    import psutil

    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except FileNotFoundError as exc:
        raise Skip(f"{cmd[0]} not found") from exc
    peak = 0
    watched = psutil.Process(proc.pid)
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def drain(stream: Any, sink: list[str]) -> None:
        sink.append(stream.read())

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, out_chunks), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, err_chunks), daemon=True),
    ]
    for t in threads:
        t.start()
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    for t in threads:
        t.join()
    return Sample(seconds, peak / 2**20, proc.returncode, "".join(out_chunks), "".join(err_chunks))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no output)"


def cli_summary(sample: Sample) -> dict[str, Any]:
    """The JSON summary the CLI printed (``--format json``), or Skip naming why there is none.

    Exit 0, 1 and 3 are outcomes about the file (SPEC section 7) and count as a measurement;
    anything else, or no summary on stdout, means the command cannot be measured yet.
    """
    if sample.returncode == 2:
        raise Skip(f"usage error (exit 2): {_last_line(sample.stderr)}")
    if sample.returncode not in (0, 1, 3):
        raise Skip(f"exit {sample.returncode}: {_last_line(sample.stderr)}")
    try:
        summary = json.loads(sample.stdout)
    except json.JSONDecodeError as exc:
        raise Skip(f"no JSON summary on stdout (exit {sample.returncode})") from exc
    if not isinstance(summary, dict):
        raise Skip("the JSON on stdout is not a summary object")
    return summary


def cli(*args: str, db: str | None = None) -> list[str]:
    if not CLI.exists():
        raise Skip(f"{CLI} is not installed")
    return [str(CLI), *(["--db", db] if db else []), *args]


def repeat(
    ctx: Context,
    name: str,
    rows: int,
    make_cmd: Callable[[], list[str]],
    prepare: Callable[[], None] | None = None,
    check: Callable[[Sample], str] | None = None,
) -> Result:
    """Median wall time and peak memory over ``ctx.runs`` runs; ``prepare`` runs untimed
    before each (e.g. reloading an org an apply has changed); ``check`` validates a sample
    and returns a note (raising Skip when the output shows the command does not work)."""
    seconds, peaks, note = [], [], ""
    for _ in range(ctx.runs):
        if prepare:
            prepare()
        sample = run_measured(make_cmd())
        note = check(sample) if check else ""
        seconds.append(sample.seconds)
        peaks.append(sample.peak_mib)
    return Result(name, rows, ctx.runs, statistics.median(seconds), max(peaks), note)


def summary_note(sample: Sample) -> str:
    summary = cli_summary(sample)
    rows = summary.get("rows", {})
    ops = summary.get("operations", {})
    parts = [f"{summary.get('status', '?')}", f"rejected {rows.get('rejected', '?')}"]
    count = sum(int(v) for v in ops.values()) if ops else 0
    if count:
        parts.append(f"ops {count}")
    applying = summary.get("timings", {}).get("apply")
    if count and applying:  # the apply stage alone (the Done-when's operations per second)
        parts.append(f"apply stage {count / applying:,.0f} ops/s")
    return ", ".join(parts)


# --- measurements -----------------------------------------------------------------------------
def bare_read(ctx: Context, rows: int) -> list[Result]:
    """The floor: pandas + pyarrow reading the same file as text, nothing else."""
    path = ctx.users_file(rows)

    def check(sample: Sample) -> str:
        if sample.returncode != 0:
            raise Skip(f"exit {sample.returncode}: {_last_line(sample.stderr)}")
        return "pandas.read_csv(engine=pyarrow, dtype=str)"

    return [
        repeat(
            ctx,
            "bare_read",
            rows,
            lambda: [sys.executable, "-c", BARE_READ, str(path)],
            check=check,
        )
    ]


def validate(ctx: Context, rows: int) -> list[Result]:
    """`validate FILE` without an org: every file-only rule, all reports written."""
    path = ctx.users_file(rows)

    def cmd() -> list[str]:
        report = ctx.report_dir(f"validate-{rows}")
        return cli("validate", str(path), "--report-dir", str(report), "--format", "json")

    result = repeat(ctx, "validate", rows, cmd, check=summary_note)
    result.baseline = "bare_read"
    return [result]


def _sqlite(name: str, rows: int, ctx: Context) -> str:
    return f"sqlite:///{ctx.work / f'{name}-{rows}.db'}"


def _load_org(db: str, org_file: Path) -> Sample:
    sample = run_measured(cli("org", "load", str(org_file), db=db))
    if sample.returncode != 0:
        raise Skip(f"org load exit {sample.returncode}: {_last_line(sample.stderr)}")
    return sample


def plan(ctx: Context, rows: int) -> list[Result]:
    """`org load` of an org of ``rows`` users, then `validate --org`: snapshot + plan.

    Two figures, since the snapshot cache (``csvimport.store.snapcache``) makes repeated runs
    on an unchanged org cheaper than the first: ``plan sqlite cold`` empties the cache before
    each run (what the first validate after a change of the org costs: the tables read and the
    cache written), ``plan sqlite`` is the warm case (one unmeasured run fills the cache, the
    measured runs read it)."""
    org_file, users = ctx.org_file(rows), ctx.org_users_file(rows)
    db = _sqlite("plan", rows, ctx)
    # Loading the org is set-up, measured once (a 1M-user load takes minutes).
    sample = _load_org(db, org_file)
    load = Result("org_load sqlite", rows, 1, sample.seconds, sample.peak_mib)

    def cmd() -> list[str]:
        report = ctx.report_dir(f"plan-{rows}")
        args = ["validate", str(users), "--org", "bench", "--report-dir", str(report)]
        return cli(*args, "--format", "json", db=db)

    cold = repeat(
        ctx,
        "plan sqlite cold",
        rows,
        cmd,
        prepare=lambda: _empty_snapshot_cache(db),
        check=lambda s: f"{summary_note(s)}, cache miss + write",
    )
    cold.baseline = "bare_read"
    summary_note(run_measured(cmd()))  # fills the cache: the warm runs below read it
    state = "cache hit" if _snapshot_cached(db) else "NOT cached: a cold run"
    warm = repeat(ctx, "plan sqlite", rows, cmd, check=lambda s: f"{summary_note(s)}, {state}")
    warm.baseline = "bare_read"
    _rules_cost(users, db)
    return [load, cold, warm]


def _snapshot_cached(db: str) -> bool:
    """Whether the SQLite database ``db`` holds a snapshot cache row of the org's current
    version (so that a run reads it)."""
    import sqlite3

    conn = sqlite3.connect(db.removeprefix("sqlite:///"))
    try:
        found = conn.execute(
            "SELECT count(*) FROM snapshot_cache c JOIN orgs o "
            "ON o.id = c.org_id AND o.state_version = c.state_version WHERE o.id = 'bench'"
        ).fetchone()
    except sqlite3.OperationalError:  # no such table
        return False
    finally:
        conn.close()
    return bool(found and found[0])


def _empty_snapshot_cache(db: str) -> None:
    """Delete the snapshot cache rows of the SQLite database ``db`` (a no-op before the cache
    existed)."""
    import sqlite3

    conn = sqlite3.connect(db.removeprefix("sqlite:///"))
    try:
        with conn:
            conn.execute("DELETE FROM snapshot_cache")
    except sqlite3.OperationalError:  # no such table: a csvimport without the cache
        pass
    finally:
        conn.close()


def _rules_cost(users: Path, db: str) -> None:
    """Issue 4's figure: the plan stage with and without the org rules (``bench/rules.py``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rules", str(users), db, "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in (proc.stdout or proc.stderr).strip().splitlines()[-3:]:
        print(f"  {line}", flush=True)


def _ok(sample: Sample, what: str) -> str:
    if sample.returncode != 0:
        raise Skip(f"{what} exit {sample.returncode}: {_last_line(sample.stderr)}")
    return ""


def _apply(ctx: Context, rows: int, name: str, db: str) -> list[Result]:
    org_file, users = ctx.org_file(rows), ctx.org_users_file(rows)

    def cmd() -> list[str]:
        report = ctx.report_dir(f"apply-{rows}")
        args = ["apply", str(users), "--org", "bench", "--report-dir", str(report)]
        return cli(*args, "--format", "json", db=db)

    # An apply changes the org: reload it before every run so each applies the same plan.
    return [
        repeat(ctx, name, rows, cmd, prepare=lambda: _load_org(db, org_file), check=summary_note)
    ]


def apply_sqlite(ctx: Context, rows: int) -> list[Result]:
    """`apply` of the org-overlapping file (adds, modifies, license changes) on SQLite."""
    if rows > APPLY_MAX_ROWS:
        return []
    return _apply(ctx, rows, "apply sqlite", _sqlite("apply", rows, ctx))


def apply_postgres(ctx: Context, rows: int) -> list[Result]:
    """The same apply on PostgreSQL (``CSVIMPORT_BENCH_PG``), if a server answers."""
    if rows > APPLY_MAX_ROWS:
        return []
    try:
        import psycopg
    except ImportError as exc:
        raise Skip("psycopg is not installed") from exc
    try:
        psycopg.connect(
            PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ).close()
    except psycopg.Error as exc:
        raise Skip(f"PostgreSQL not reachable at {PG_URL}: {_last_line(str(exc))}") from exc
    return _apply(ctx, rows, "apply postgres", PG_URL)


APPLY_MAX_ROWS = 100_000  # applies are measured at 100k rows (and at the --quick size)

Measurement = Callable[[Context, int], list[Result]]
MEASUREMENTS: list[Measurement] = [bare_read, validate, plan, apply_sqlite, apply_postgres]


# --- output -----------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[Result]) -> str:
    """Rows/s, peak MiB and the ratio to the bare read of the same size, one line each."""
    header = ("measurement", "rows", "runs", "median s", "rows/s", "peak MiB", "x bare", "note")
    lines = [header]
    for r in results:
        lines.append(
            (
                r.name,
                f"{r.rows:,}",
                str(r.runs or "-"),
                _fmt(r.seconds, ".2f"),
                _fmt(r.rows_per_s, ",.0f"),
                _fmt(r.peak_mib, ",.0f"),
                _fmt(r.ratio, ".1f"),
                r.note,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i in (0, 7) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _ratios(results: list[Result]) -> None:
    bare = {r.rows: r for r in results if r.name == "bare_read" and r.seconds}
    for r in results:
        base = bare.get(r.rows) if r.baseline == "bare_read" else None
        if base and r.seconds and base.seconds:
            r.ratio = r.seconds / base.seconds


def _extras(quick: bool) -> None:
    """The drop folder and customer provisioning figures, each from its own module."""
    from bench.customers import bench_customers
    from bench.watch import bench_watch

    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("drop folder (watch), SQLite", lambda: bench_watch(files=10 if quick else 100)),
        (
            "drop folder (watch), PostgreSQL",
            lambda: bench_watch(PG_URL, files=10 if quick else 100),
        ),
        ("customers validate + plan", lambda: bench_customers(1_000 if quick else 10_000)),
    ]
    for title, run in sections:
        print(f"\n{title}")
        try:
            for line in run():
                print(f"  {line}", flush=True)
        except Exception as exc:  # a benchmark reports, it does not crash
            print(f"  skipped: {type(exc).__name__}: {exc}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k rows, one run: a smoke test")
    parser.add_argument("--runs", type=int, help="runs per measurement (median); default 3")
    parser.add_argument("--sizes", help="comma-separated row counts (default 100000,1000000)")
    parser.add_argument("--only", help="comma-separated measurement names")
    parser.add_argument("--regen", action="store_true", help="regenerate the cached inputs")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [100_000, 1_000_000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    runs = args.runs or (1 if args.quick else 3)
    chosen = MEASUREMENTS
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [m for m in MEASUREMENTS if m.__name__ in wanted]
    global APPLY_MAX_ROWS
    APPLY_MAX_ROWS = max(APPLY_MAX_ROWS, min(sizes))

    DATA.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=DATA))
    ctx = Context(runs=runs, regen=args.regen, work=work)
    results: list[Result] = []
    try:
        for rows in sizes:
            for measure in chosen:
                print(f"{measure.__name__} @ {rows:,} rows ...", flush=True)
                try:
                    got = measure(ctx, rows)
                except Skip as exc:
                    print(f"  skipped: {exc}", flush=True)
                    results.append(Result(measure.__name__, rows, note=f"skipped: {exc}"))
                    continue
                except Exception as exc:  # a benchmark reports, it does not crash
                    print(f"  skipped: {type(exc).__name__}: {exc}", flush=True)
                    results.append(Result(measure.__name__, rows, note=f"skipped: {exc}"))
                    continue
                for r in got:
                    print(
                        f"  {r.name}: {_fmt(r.seconds, '.2f')}s, "
                        f"{_fmt(r.peak_mib, ',.0f')} MiB {r.note}",
                        flush=True,
                    )
                results.extend(got)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _ratios(results)
    print()
    print(table(results))
    if not args.only or "extras" in args.only.split(","):
        _extras(args.quick)
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.__dict__ for r in results], indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
