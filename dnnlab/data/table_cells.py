"""Reading one column of a table's cells: as numbers (refusing text and infinities, naming the
cell), as category indices, or as sorted distinct values with their counts. Shared by the column
choice (table_columns) and the fitted encoding (tables); pandas does the hashing, so a million
cells cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dnnlab.data.table_files import located
from dnnlab.errors import DataError


def is_numbers(column: pd.Series) -> bool:
    """Numbers, True/False included (as 1.0/0.0)."""
    return pd.api.types.is_numeric_dtype(column.dtype)


def is_text(column: pd.Series) -> bool:
    """Text: pandas's str dtype, or object as pandas 2 holds text."""
    return pd.api.types.is_string_dtype(column.dtype)


def as_text(column: pd.Series) -> pd.Series:
    """The column as pandas text (missing cells stay missing), so that categories are strings; whole
    numbers read as 7, not 7.0 (a float column because some cells are missing)."""
    if isinstance(column.dtype, pd.StringDtype):
        return column
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if (
            np.all(np.isnan(values) | (np.mod(values, 1) == 0))
            and np.nanmax(np.abs(values), initial=0) < 2**53
        ):
            return column.astype("Int64").astype("string")
    return column.astype("string")


def numbers_of(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The column as float64, NaN where missing; a cell that is text or infinite is refused."""
    column = frame[name]
    if is_numbers(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(column, errors="coerce")
        bad = (converted.isna() & column.notna()).to_numpy()
        if bad.any():
            raise DataError(
                f"{located(frame, name, int(np.argmax(bad)))}: not a number, but the column is numeric; "
                "fix the cell, or declare the column categorical"
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            f"{located(frame, name, int(np.argmax(infinite)))}: infinite; expected finite numbers"
        )
    return values


def category_codes(column: pd.Series, categories: Sequence) -> np.ndarray:
    """Each cell's index in `categories`, -1 for a missing cell or an unknown value."""
    codes, uniques = pd.factorize(as_text(column))
    lookup = np.append(pd.Index(list(categories), dtype=object).get_indexer(uniques.astype(object)), -1)
    return lookup[codes]  # code -1 (missing) picks the appended -1


def distinct_counts(column: pd.Series) -> tuple[list, np.ndarray]:
    """The distinct values of the non-missing cells, sorted (numbers as floats, else texts), and how
    often each occurs; hashed (pandas's factorize), then only the few distinct values sorted."""
    numbers = is_numbers(column)
    cells = column.to_numpy(dtype=np.float64, na_value=np.nan) if numbers else as_text(column)
    codes, uniques = pd.factorize(cells)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    uniques = np.asarray(uniques, dtype=np.float64 if numbers else object)
    order = np.argsort(uniques, kind="stable")
    return [float(v) if numbers else str(v) for v in uniques[order]], counts[order]


def has_two_values(column: pd.Series) -> bool:
    """Whether the column's cells hold exactly two distinct values: for numbers, whether every cell
    is its minimum or its maximum (no hashing of a million cells)."""
    if is_numbers(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        present = np.count_nonzero(~np.isnan(values))
        low, high = np.nanmin(values), np.nanmax(values)
        return bool(low != high and np.count_nonzero((values == low) | (values == high)) == present)
    return len(pd.factorize(column)[1]) == 2
