"""Shared database fixtures: every store test runs on SQLite and on PostgreSQL.

- SQLite: a fresh file in the test's tmp dir.
- PostgreSQL: ``$CSVIMPORT_TEST_PG`` (the tests FAIL if it is set and the server is not there);
  when unset, the local default URL, skipped if unreachable, except in CI (``$CI`` set) where
  an unreachable server fails. Each test gets its own schema (``search_path``), dropped after
  it, so tests are isolated and may run beside other test runs on the same database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, select, text

from csvimport.store.db import connect, transaction
from csvimport.store.models import Base
from csvimport.store.orgfile import load_org_file

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

ACME_YAML = """\
org:
  id: acme
  name: Acme GmbH
  kind: customer
  package: webex_suite
  directory_sync: false
  integrations: [miteam_meetings]
  verified_domains: [acme.example]
locations: [{name: HQ}, {name: Berlin}]
sites: [acme.webex.com]
numbers:
  - {number: "+4930123456", location: HQ}
  - {number: "+49 30 123457", location: Berlin}
  - {number: "+4930123458", location: HQ}
pools:
  - {license: webex_calling, quantity: 100, status: active, order: ORD-1, subscription: Sub123}
  - {license: webex_suite}
  - {license: miteam_meetings, quantity: 5}
users:
  - {email: Anna@acme.example, first_name: Anna, last_name: Berg, role: full_admin,
     package: webex_suite, extension: "1001", phone_number: "+4930123456", location: HQ,
     preferred_site: acme.webex.com, jabber_calling: true, jabber_teams: true,
     licenses: [basic_messaging, miteam_meetings]}
  - {email: bob@acme.example, first_name: Bob, last_name: Bauer, extension: 1002, location: HQ}
"""

CONSUMER_YAML = """\
org: {id: free, name: Free accounts, kind: consumer}
users:
  - {email: Carl@acme.example, first_name: Carl}
  - {email: dora@gmail.com, first_name: Dora}
"""


@lru_cache(maxsize=1)
def _pg_problem(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be used, or None when it can."""
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:  # any failure to connect
        return f"{type(exc).__name__}: {exc}"
    return None


def _pg_schema_url() -> Iterator[str]:
    url = os.environ.get("CSVIMPORT_TEST_PG")
    required = bool(url) or bool(os.environ.get("CI"))
    url = url or DEFAULT_PG
    problem = _pg_problem(url)
    if problem is not None:
        if required:
            pytest.fail(f"PostgreSQL at {url} is required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL at {url} unreachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of its own, for each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'csvimport.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with the schema created."""
    eng = connect(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def org_file(tmp_path: Path) -> Path:
    """The sample customer org ``acme`` as a YAML file."""
    path = tmp_path / "acme.yaml"
    path.write_text(ACME_YAML, encoding="utf-8")
    return path


@pytest.fixture
def acme(engine: Engine, org_file: Path, tmp_path: Path) -> str:
    """``engine`` with org ``acme`` and the consumer org ``free`` loaded; returns "acme"."""
    consumer = tmp_path / "free.yaml"
    consumer.write_text(CONSUMER_YAML, encoding="utf-8")
    load_org_file(engine, consumer)
    return load_org_file(engine, org_file)


def dump_tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: to compare whole database states. The snapshot
    cache is left out: it is derived data (written by any snapshot read), not org state."""
    with transaction(engine, write=False) as conn:
        return {
            name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for name, table in Base.metadata.tables.items()
            if name != "snapshot_cache"
        }


@pytest.fixture
def dump() -> Callable[[Engine], dict[str, list[tuple[Any, ...]]]]:
    """``dump(engine)``: the whole database as sorted rows per table."""
    return dump_tables


def org_settings(**changes: Any) -> Any:
    """The settings of a plain customer org "acme" for hand-built snapshots, with ``changes``
    (the generated-org tests vary only a few of them)."""
    from csvimport.store.snapshot import OrgSettings

    plain: dict[str, Any] = {
        "id": "acme",
        "name": "Acme",
        "kind": "customer",
        "package": None,
        "directory_sync": False,
        "integrations": (),
        "default_licenses": (),
        "verified_domains": (),
        "claimed_domains": (),
        "trial": False,
        "state_version": 1,
    }
    return OrgSettings(**{**plain, **changes})


def users_frame(users: list[dict[str, str]]) -> Any:
    """An org's users as a snapshot holds them: every user column (missing ones blank), as
    text, indexed by email; for the generated orgs of the rules tests."""
    import pandas as pd

    from csvimport.store.snapshot import USER_COLUMNS

    frame = pd.DataFrame([{**dict.fromkeys(USER_COLUMNS, ""), **u} for u in users]).astype("str")
    frame.index = pd.Index(frame["email"], name="email", dtype="str")
    return frame[list(USER_COLUMNS)]
