"""Small value rules the store applies to what it keeps: numbers, emails, booleans.

The store normalises phone numbers to E.164 before keeping or comparing them (SPEC 5:
"numbers normalised to E.164 before comparing"), so the inventory and users' numbers match
however the admin spaced them.
"""

from __future__ import annotations

import re

from csvimport.catalog import Catalog

_PHONE_NOISE = re.compile(r"[\s\-.()\[\]/]")
_E164 = re.compile(r"^\+[0-9]{8,15}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_EXTENSION = re.compile(r"^[0-9]{2,10}$")


def normalize_number(value: str) -> str:
    """``value`` without spaces, dashes, dots, slashes and brackets."""
    return _PHONE_NOISE.sub("", value.strip())


def is_e164(value: str) -> bool:
    return bool(_E164.match(normalize_number(value)))


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value)) and len(value.split("@", 1)[0]) <= 64


def is_extension(value: str) -> bool:
    return bool(_EXTENSION.match(value))


def parse_bool(value: object, catalog: Catalog) -> bool | None:
    """A YAML/JSON boolean or a boolean word of the catalogue; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in catalog.true_words:
            return True
        if word in catalog.false_words:
            return False
    return None


def bool_text(value: bool | None) -> str:
    """How a stored boolean reads in a table: ``TRUE``, ``FALSE`` or blank."""
    return "" if value is None else ("TRUE" if value else "FALSE")
