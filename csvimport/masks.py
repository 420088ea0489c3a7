"""Masks: over nullable boolean columns (TRUE / FALSE / blank = <NA>), and membership of text.

One place for each idiom: ``flag == True`` on a nullable column yields <NA> for blanks, and
pandas' ``isin`` on Arrow-backed text is slow for large candidate sets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc


def is_true(flag: pd.Series) -> pd.Series:
    """True where the cell said TRUE; blank and FALSE are False."""
    return flag.eq(True).fillna(False).astype(bool)


def is_false(flag: pd.Series) -> pd.Series:
    """True where the cell said FALSE; blank and TRUE are False."""
    return flag.eq(False).fillna(False).astype(bool)


def member(values: pd.Series | pd.Index, pool: Iterable[str] | pd.Series | pd.Index) -> np.ndarray:
    """``values.isin(pool)`` for text, through Arrow's hash kernel.

    pandas' ``isin`` on Arrow-backed strings first boxes every candidate of ``pool`` in a
    Python scalar: half a second per call at 100k candidates, which the planner makes a dozen
    times over a million-row file.
    """
    haystack = _arrow_text(pool)
    if len(haystack) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    found = pc.is_in(_arrow_text(values), value_set=haystack)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _arrow_text(values: Iterable[str] | pd.Series | pd.Index) -> pyarrow.Array:
    """Any text column or collection as an Arrow large_string array."""
    if isinstance(values, (pd.Series, pd.Index)):
        try:
            arr = pyarrow.array(values.array)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, TypeError):
            arr = pyarrow.array(np.asarray(values, dtype=object), type=pyarrow.large_string())
    else:
        arr = pyarrow.array(list(values), type=pyarrow.large_string())
    if isinstance(arr, pyarrow.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pyarrow.large_string())
