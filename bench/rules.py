"""What the organisation rules cost: the plan stage with every rule, and without them.

Why it looks like this: the rules of the seeds (inventory, claims, directory sync, admin
level, integrations, seats, numbers, extensions, last admin) run inside ``make_plan``; the
only honest "before and after" is the same plan made twice in one process over the same
validated rows and snapshot, once as shipped and once with ``rules.check`` and
``accounting.check`` replaced by no-ops. Medians of ``--runs`` runs each, interleaved so
that a noisy neighbour hurts both sides alike.

Run: ``.venv/bin/python -m bench.rules ROWS_FILE DB_URL [--org bench] [--runs 3]`` after
``org load`` of the matching org (``bench/run.py`` caches both in ``bench/data/``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from csvimport import accounting, rules
from csvimport import catalog as catalog_mod
from csvimport.model import Options
from csvimport.plan import make_plan
from csvimport.read import read_table
from csvimport.store.db import connect
from csvimport.store.snapshot import load_snapshot
from csvimport.validate import validate


def _no_rules() -> Callable[[], None]:
    """Replace both rule entry points with no-ops; returns the undo."""
    kept = rules.check, accounting.check
    rules.check = lambda rows, b: None  # type: ignore[assignment]
    accounting.check = lambda rows, valid: pd.DataFrame()  # type: ignore[assignment]

    def undo() -> None:
        rules.check, accounting.check = kept

    return undo


def measure(path: Path, url: str, org: str, runs: int) -> dict[str, float]:
    """Median plan-stage seconds with and without the rules, and the issues each found."""
    cat = catalog_mod.default()
    options = Options(file=path, org=org)
    table = read_table(path, options, cat)
    email = table.column_for("email")
    keys = table.frame[email.index].str.lower() if email is not None else None
    snap = load_snapshot(connect(url), org, emails=keys)
    checked = validate(table, cat, options.mode, current=snap.users)
    times: dict[str, list[float]] = {"with rules": [], "without rules": []}
    found: dict[str, int] = {}
    for _ in range(runs):
        for name in times:
            undo = _no_rules() if name == "without rules" else (lambda: None)
            try:
                start = time.perf_counter()
                _plan, issues, _ = make_plan(checked, snap, cat, options.mode, None)
                times[name].append(time.perf_counter() - start)
                found[name] = len(issues) - len(checked.issues)
            finally:
                undo()
    out = {name: statistics.median(values) for name, values in times.items()}
    out.update({f"org issues {name}": float(n) for name, n in found.items()})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__)
    parser.add_argument("rows_file", type=Path)
    parser.add_argument("db_url")
    parser.add_argument("--org", default="bench")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    got = measure(args.rows_file, args.db_url, args.org, args.runs)
    with_rules, without = got["with rules"], got["without rules"]
    print(
        f"plan stage, median of {args.runs}: with rules {with_rules:.2f} s, without {without:.2f} s"
    )
    print(f"rules cost {with_rules - without:.2f} s ({with_rules / without:.2f}x)")
    print(
        f"org-level issues found: {got['org issues with rules']:.0f} with rules, "
        f"{got['org issues without rules']:.0f} without"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
