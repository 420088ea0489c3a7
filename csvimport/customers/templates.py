"""Onboarding templates (seed 002): ``templates load FILE`` and ``templates list``.

A template is what many customers share: country, language, time zone, subscription,
authentication and the two invitation switches. Decisions:

* The file is checked whole before anything is stored, with the org file's checker: every
  problem names its key path and value (``templates[1].authentication: 'ldap' is not ...``)
  and a bad file loads nothing.
* ``provisioning_id`` is the key: loading adds templates and replaces one with the same id.
  Names must be unique too (a customer row may name its template by name), across the file
  and the templates already stored.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from csvimport import catalog as users_catalog
from csvimport.customers.catalog import CustomerCatalog
from csvimport.customers.catalog import default as default_catalog
from csvimport.store.db import transaction
from csvimport.store.models import Template, utcnow
from csvimport.store.orgfile import OrgFileError, _Checker, read_org_file

KEYS = (
    "name",
    "provisioning_id",
    "country",
    "language",
    "subscription",
    "authentication",
    "email_invitations",
    "allow_admin_invites_on_attach",
    "timezone",
)
AUTHENTICATION = ("webex", "sso")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?")


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    """The IANA time zone names this system knows."""
    return frozenset(zoneinfo.available_timezones())


class _TemplateChecker(_Checker):
    """The org file's checker, taught the template keys."""

    def __init__(self, catalog: CustomerCatalog) -> None:
        super().__init__(users_catalog.default())
        self.customers = catalog

    def templates(self, raw: Any) -> list[dict[str, Any]]:
        top = self.mapping("", raw, ("templates",))
        if isinstance(raw, dict) and "templates" not in raw:
            self.problems.append("templates: is required (a list of templates)")
        out = [
            self.template(f"templates[{i}]", t)
            for i, t in enumerate(self.items("templates", top.get("templates")))
        ]
        self.unique(out, "provisioning_id")
        self.unique(out, "name")
        return out

    def unique(self, templates: list[dict[str, Any]], key: str) -> None:
        seen: dict[str, int] = {}
        for i, t in enumerate(templates):
            value = t.get(key)
            if value is None:
                continue
            if value.casefold() in seen:
                self.bad(
                    f"templates[{i}].{key}", value, f"is also templates[{seen[value.casefold()]}]'s"
                )
            seen.setdefault(value.casefold(), i)

    def template(self, here: str, raw: Any) -> dict[str, Any]:
        m = self.mapping(here, raw, KEYS)
        country = self.text(f"{here}.country", m.get("country"))
        if country is not None and country.upper() not in self.customers.countries:
            self.bad(f"{here}.country", country, "is not an ISO 3166 alpha-2 country code")
        language = self.text(f"{here}.language", m.get("language"))
        if language is not None and not _LANGUAGE.fullmatch(language):
            self.bad(f"{here}.language", language, "is not a language such as de_DE")
        zone = self.text(f"{here}.timezone", m.get("timezone"))
        if zone is not None and zone not in time_zones():
            self.bad(f"{here}.timezone", zone, "is not an IANA time zone such as Europe/Berlin")
        auth = self.text(f"{here}.authentication", m.get("authentication")) or "webex"
        return {
            "name": self.text(f"{here}.name", m.get("name"), required=True),
            "provisioning_id": self.text(
                f"{here}.provisioning_id", m.get("provisioning_id"), required=True
            ),
            "country": country.upper() if country else None,
            "language": language,
            "subscription": self.text(f"{here}.subscription", m.get("subscription")),
            "authentication": self.one_of(
                f"{here}.authentication", auth, AUTHENTICATION, "an authentication"
            ),
            "email_invitations": bool(
                self.flag(f"{here}.email_invitations", m.get("email_invitations"), True)
            ),
            "allow_admin_invites_on_attach": bool(
                self.flag(
                    f"{here}.allow_admin_invites_on_attach", m.get("allow_admin_invites_on_attach")
                )
            ),
            "timezone": zone,
        }


def parse_templates(
    raw: Any, source: str, catalog: CustomerCatalog | None = None
) -> list[dict[str, Any]]:
    """Check a parsed templates document; return its templates or raise ``OrgFileError``."""
    checker = _TemplateChecker(catalog or default_catalog())
    templates = checker.templates(raw)
    if not templates and not checker.problems:
        checker.problems.append("templates: the list is empty")
    if checker.problems:
        raise OrgFileError(source, checker.problems)
    return templates


def load_templates(engine: Engine, path: Path) -> list[str]:
    """Add or replace the templates of ``path`` in one transaction; return their ids.

    Raises ``OrgFileError`` (every problem, nothing loaded) when the file is wrong, including
    a name that another stored template already has.
    """
    templates = parse_templates(read_org_file(path), path.name)
    ids = [str(t["provisioning_id"]) for t in templates]
    with transaction(engine) as conn:
        taken = {
            str(name).casefold(): pid
            for pid, name in conn.execute(select(Template.provisioning_id, Template.name))
        }
        owners = [taken.get(t["name"].casefold(), t["provisioning_id"]) for t in templates]
        clashes = [
            f"templates[{i}].name: {t['name']!r} is already the name of template {owner!r}"
            for i, (t, owner) in enumerate(zip(templates, owners, strict=True))
            if owner != t["provisioning_id"]
        ]
        if clashes:
            raise OrgFileError(path.name, clashes)
        conn.execute(delete(Template).where(Template.provisioning_id.in_(ids)))
        conn.execute(insert(Template), [{**t, "loaded_at": utcnow()} for t in templates])
    return ids


def list_templates(engine: Engine) -> list[dict[str, Any]]:
    """Every stored template as a dict of ``KEYS``, by name."""
    with transaction(engine, write=False) as conn:
        rows = conn.execute(select(Template).order_by(Template.name))
        return [{k: r._mapping[k] for k in KEYS} for r in rows]
