"""Customers in ``make bench``: validate + plan of 10,000 customer rows (SPEC 11).

Why it looks like this:

- The store is set up first (templates, 200 existing orgs of which some need approval, 500
  customers already provisioned), so the plan meets every kind of row: 500 updates, 200
  attaches or approval requests, creates for the rest, and 5 % bad rows spread over the
  section 11 codes.
- The measured run is a fresh Python process running ``csvimport.customers.run`` as a dry run
  (what ``customers validate`` does, minus click): its stage timings give rows/s of
  validate + plan (snapshot included, reading excluded) and its own ``VmHWM`` gives the peak
  memory, so set-up work in this process never inflates it. Not ``getrusage``: Linux carries
  ``ru_maxrss`` over ``fork`` and ``exec``, so the child reported the runner's own peak (4,135
  MiB for 10,000 rows, after the runner had generated the 1M-user org file).

Run: ``.venv/bin/python -m bench.customers [ROWS] [URL]`` (default 10,000 rows, a fresh SQLite
file). ``bench_customers()`` returns the printable lines for ``bench/run.py``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = 10_000
EXISTING_ORGS = 200
KNOWN = 500
HEADER = [
    "Company Name", "Admin Email", "External Customer ID", "Country", "Provisioning ID",
    "Packages", "Webex Calling Quantity", "Webex Suite Quantity", "Address Line 1",
    "Address Line 2", "City", "ZIP or Postal Code", "Location Name", "Time Zone",
    "Existing Org ID", "Supported Location Confirmed",
]  # fmt: skip
# One bad cell per kind, put on every 20th row (5 %): column index -> value.
BAD = [
    (3, "XX"),
    (5, "webex_sweet"),
    (8, "x" * 60),
    (0, "100% Wholesale"),
    (15, "FALSE"),
    (4, "PROV-NONE"),
    (5, "webex_meetings;cisco_calling_plan"),
    (6, "ten"),
]


def _row(i: int, known: bool = False, org: str = "") -> list[str]:
    ext = f"cust-{i:06d}"
    packages = ("webex_suite;webex_calling;cisco_calling_plan", "webex_meetings", "webex_calling")[
        i % 3
    ]
    calls = str(10 + i % 90 + (5 if known else 0))
    country, template = ("DE", "PROV-DACH-01") if i % 2 else ("", "Wholesale Nordics")
    return [
        f"Customer {i} GmbH", f"admin{i}@cust{i}.example", ext, country, template, packages,
        calls, str(1 + i % 20), f"Hauptstraße {i}", "", "Berlin", f"{10000 + i % 89999}", "HQ",
        "", org, "TRUE",
    ]  # fmt: skip


def _csv(rows: list[list[str]]) -> str:
    def cell(c: str) -> str:
        return f'"{c}"' if "," in c or ";" in c else c

    return "\n".join(",".join(cell(c) for c in r) for r in [HEADER, *rows]) + "\n"


def setup(url: str, work: Path, rows: int = ROWS) -> Path:
    """Templates, existing orgs and customers in the store; returns the file to measure."""
    from csvimport import customers
    from csvimport.customers.templates import load_templates
    from csvimport.model import Options
    from csvimport.store.db import connect
    from csvimport.store.orgfile import OrgData, store_org

    engine = connect(url)
    load_templates(engine, ROOT / "samples" / "templates.yaml")
    for n in range(EXISTING_ORGS):
        org = {"id": f"org-{n:04d}", "name": f"Existing {n}", "kind": "customer",
               "package": None, "directory_sync": False, "integrations": [],
               "default_licenses": [], "verified_domains": [f"o{n}.example"] if n % 4 == 0 else [],
               "claimed_domains": [], "trial": n % 50 == 49}  # fmt: skip
        users = [{"email": f"u{k}@o{n}.example", "email_display": f"u{k}@o{n}.example",
                  "role": "full_admin" if k == 0 else "user"} for k in range(5)]  # fmt: skip
        store_org(engine, OrgData(org=org, users=users))
    first = work / "known.csv"
    first.write_text(_csv([_row(i) for i in range(KNOWN)]), encoding="utf-8")
    done = customers.run(Options(file=first, dry_run=False), db=engine)
    assert done.exit_code == 0, done.issues.head().to_string()
    engine.dispose()
    table: list[list[str]] = []
    for i in range(rows):
        if i < KNOWN:
            row = _row(i, known=True)
        elif i < KNOWN + EXISTING_ORGS:
            row = _row(i, org=f"org-{i - KNOWN:04d}")
        else:
            row = _row(i)
        if i % 20 == 19:
            column, value = BAD[(i // 20) % len(BAD)]
            row[column] = value
        table.append(row)
    path = work / f"customers{rows}.csv"
    path.write_text(_csv(table), encoding="utf-8")
    return path


def _child(url: str, file: str) -> None:
    """The measured process: one dry run, its stage timings and its own peak memory."""
    from csvimport import customers
    from csvimport.model import Options
    from csvimport.store.db import connect

    result = customers.run(Options(file=Path(file)), db=connect(url))
    out = {"summary": result.summary(), "peak_mib": _own_peak_kib() / 1024}
    print(json.dumps(out))


def _own_peak_kib() -> int:
    """This process image's peak resident memory (``VmHWM``, reset by ``exec``); where
    ``/proc`` is missing, ``ru_maxrss``, which may include the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(url: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.customers", "--child", url, str(path)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def bench_customers(rows: int = ROWS, url: str | None = None) -> list[str]:
    """Printable lines: validate + plan of ``rows`` customer rows, rows/s and peak MiB."""
    with tempfile.TemporaryDirectory(prefix="bench-customers-") as tmp:
        work = Path(tmp)
        db = url or f"sqlite:///{work / 'customers.db'}"
        path = setup(db, work, rows)
        found = measure(db, path)
    s = found["summary"]
    t = s["timings"]
    planning = t.get("snapshot", 0.0) + t.get("validate", 0.0) + t.get("plan", 0.0)
    total = planning + t.get("read", 0.0)
    ops = ", ".join(f"{k} {v}" for k, v in s["operations"].items())
    backend = db.split(":", 1)[0].split("+", 1)[0]
    return [
        f"customers validate+plan, {s['rows']['total']:,} rows ({backend}): "
        f"{planning:.2f} s = {s['rows']['total'] / planning:,.0f} rows/s "
        f"(with read {total:.2f} s), peak {found['peak_mib']:.0f} MiB",
        f"  {s['rows']['rejected']:,} rejected; would {ops}",
        "  stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()),
    ]


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3])
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    url = sys.argv[2] if len(sys.argv) > 2 else None
    for line in bench_customers(rows, url):
        print(line)


if __name__ == "__main__":
    main()
