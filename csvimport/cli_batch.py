"""``watch``: the drop-folder worker's command (SPEC section 10)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this module's commands to the main group."""
