"""Tables as a data source: a CSV with text columns or chosen columns, and the packaged penguins.

pandas reads the file (table_files), the spec's choices and the header settle the feature
columns (table_columns), and the rows missing a cell of a `missing: drop` column are left out
before anything is split, so that training, validation and test rows follow one rule. datasets.py
splits the rows by position, as for every source; `Table.fit` learns the encoding on the
training rows only (tables.TablePreprocessing). datasets imports this module inside the
functions that read a table, so that other sources never import pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dnnlab.data.penguins import load_penguins
from dnnlab.data.table_files import read_table
from dnnlab.data.tables import (
    CATEGORICAL,
    ColumnRule,
    TablePreprocessing,
    TargetEncoding,
    declared_text_columns,
    drop_missing_rows,
    fit_target,
    infer_columns,
)
from dnnlab.spec.data import CsvSource, PenguinsSource

KEY = "data.dataset"


@dataclass(frozen=True)
class Table:
    """A table's rows (after `missing: drop`; the index keeps the file's row numbers for
    messages), its feature columns and its target as all rows have it."""

    frame: pd.DataFrame
    columns: list[ColumnRule]
    target: TargetEncoding
    name: str

    def strata(self) -> np.ndarray:
        """The target as integer codes, which the stratified hold-out draws by."""
        return pd.factorize(self.frame[self.target.name])[0]

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[positions]

    def fit(self, positions: np.ndarray) -> TablePreprocessing:
        """The encoding learnt on the rows at `positions` (the training rows)."""
        return TablePreprocessing.fit(self.rows(positions), self.columns, self.target.name, self.target.task)


def read_source(source: CsvSource | PenguinsSource, task: str | None) -> Table:
    """The table a source names, its columns settled and checked, the target's task decided."""
    declared = {name: rule.model_dump(exclude_none=True) for name, rule in (source.columns or {}).items()}
    text = declared_text_columns(declared)
    if isinstance(source, PenguinsSource):
        frame, name = load_penguins(text), "penguins"
    else:
        frame, name = read_table(source.path, f"{KEY}.path", text), f"csv:{source.path}"
    columns = infer_columns(frame, source.target, source.features, source.drop, declared, KEY)
    frame = drop_missing_rows(frame, columns)
    return Table(frame, columns, fit_target(frame, source.target, task), name)


def cells_as_text(column: pd.Series) -> np.ndarray:
    """A column's cells as a CSV would spell them, for an exported model that takes text: numbers
    in Python's shortest round-trip form (they parse back to the same float64), missing cells
    empty."""
    missing = column.isna().to_numpy()
    return np.where(missing, "", column.astype(str).to_numpy(dtype=object)).astype(str)


def with_probe_rows(frame: pd.DataFrame, encoding: TablePreprocessing) -> pd.DataFrame:
    """`frame` and after it copies of its first row that test the encoding's edges: for each
    column, the cell missing (unless the run drops such rows), and for each categorical column,
    a value the training rows never had (an all-zero one-hot row)."""
    probes = []
    first = frame.iloc[:1]
    for column in encoding.columns:
        if column.missing != "drop":
            probes.append(first.assign(**{column.name: np.nan}))
        if column.type == CATEGORICAL:
            unseen = "(unseen)" + "_" * max((len(str(c)) for c in column.categories), default=0)
            probes.append(first.assign(**{column.name: unseen}))
    return pd.concat([frame, *probes]) if probes else frame


def column_report(encoding: TablePreprocessing) -> list[dict[str, Any]]:
    """Each feature column as `check` shows it: type, missing policy, indicator, and the encoded
    columns it becomes (one-hot categories, the binary value that reads 1)."""
    return [
        {
            "name": column.name,
            "type": column.type,
            "missing": column.missing,
            "indicator": column.indicator,
            "fill": column.fill,
            "encoded": column.feature_names(),
            "categories": list(column.categories) or None,  # one-hot categories; binary: the 0 and 1 values
        }
        for column in encoding.columns
    ]
