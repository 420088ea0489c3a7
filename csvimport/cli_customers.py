"""``customers`` and ``templates``: provisioning customer orgs by file (SPEC section 11)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this module's commands to the main group."""
