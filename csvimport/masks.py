"""Masks over nullable boolean columns (TRUE / FALSE / blank = <NA>).

One place for the idiom, since ``flag == True`` on a nullable column yields <NA> for blanks
and linters rightly dislike the comparison.
"""

from __future__ import annotations

import pandas as pd


def is_true(flag: pd.Series) -> pd.Series:
    """True where the cell said TRUE; blank and FALSE are False."""
    return flag.eq(True).fillna(False).astype(bool)


def is_false(flag: pd.Series) -> pd.Series:
    """True where the cell said FALSE; blank and TRUE are False."""
    return flag.eq(False).fillna(False).astype(bool)
