"""Tables with named columns: how their feature columns become the numbers a Dense network takes.

`infer_columns` (table_columns, re-exported here) settles which columns are features and their
types from the spec's plain values and the header. `TablePreprocessing.fit` learns, on the
training rows only, each column's categories (sorted), its fill value for missing cells and, for
a labelled table, the target's classes; `transform` turns any frame with those columns into the
float32 matrix a Dense network takes, and `to_json` is what preprocessing.json records so that
predict and export repeat it exactly.

The encoding, column by column in feature order:
  numeric      one column, the number; a missing cell gets the fill (mean, median, most_frequent,
               constant = 0).
  binary       one column, 1.0 for the second of the two sorted values (`sex=male`), 0.0 for the
               first; fill: most_frequent (default), mean (the share of the second value), median,
               constant = 0.0. A third value is refused: there is no honest number for it.
  categorical  one-hot over the training rows' categories (`island=Biscoe`). A category the training
               rows never had gives an all-zero row, as does a missing cell under `constant`
               (default); most_frequent fills the commonest category.
  indicator    `indicator: true` adds a column after the value: 1.0 where the cell was missing.
  drop         `missing: drop`: `drop_missing_rows` removes such rows before the split; at predict
               time such a row is refused, naming its row and column.

Nothing here scales: numeric columns come out in their own units, and dnnlab's Scaling (fitted on
the training rows, recorded in preprocessing.json) standardizes the columns `scaled_features()`
marks, the numeric ones. One-hot, binary and indicator columns stay 0/1: standardizing a category
seen in 1 row of 1,000 would give it the value 31.6, and Géron (Hands-On Machine Learning, ch. 2)
scales the numeric columns only, as scikit-learn's usual ColumnTransformer does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dnnlab.data.table_cells import as_text, category_codes, distinct_counts, is_numbers, numbers_of
from dnnlab.data.table_columns import (
    BINARY,
    CATEGORICAL,
    COLUMN_TYPES,
    MISSING_POLICIES,
    NUMERIC,
    ColumnRule,
    declared_text_columns,
    drop_missing_rows,
    infer_columns,
)
from dnnlab.data.table_files import located, quoted, source_of
from dnnlab.errors import DataError, RunDirError

__all__ = [
    "ColumnRule",
    "EncodedColumn",
    "TablePreprocessing",
    "TargetEncoding",
    "declared_text_columns",
    "drop_missing_rows",
    "fit_target",
    "infer_columns",
]

CLASSIFICATION, REGRESSION = "classification", "regression"
MAX_CATEGORIES = 100  # one-hot columns of one categorical column
MAX_CLASSES = 1000
BLOCK_ROWS = 8192  # rows transform writes at a time (7 MB at 219 columns)
MAX_COLUMNS = 10_000  # limits on what from_json accepts
MAX_NAME_CHARS = 1000
FORMAT, VERSION = "dnnlab-table", 1


# --- the fitted encoding ------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedColumn:
    """A feature column's fitted encoding. `fill` is the number a missing cell becomes (numeric,
    binary), or the category it becomes (categorical; None: an all-zero row). `categories` are the
    one-hot categories (categorical) or the two values, 0 then 1 (binary)."""

    name: str
    type: str
    missing: str
    indicator: bool
    fill: float | str | None
    categories: tuple = ()

    @property
    def width(self) -> int:
        return (len(self.categories) if self.type == CATEGORICAL else 1) + int(self.indicator)

    def feature_names(self) -> list[str]:
        if self.type == CATEGORICAL:
            names = [f"{self.name}={category}" for category in self.categories]
        elif self.type == BINARY:
            names = [f"{self.name}={_label(self.categories[1])}"]
        else:
            names = [self.name]
        return names + ([f"{self.name} (missing)"] if self.indicator else [])


@dataclass(frozen=True)
class TargetEncoding:
    """The target column: class names in index order (classification), or None (regression)."""

    name: str
    task: str
    classes: tuple | None = None


@dataclass(frozen=True)
class TablePreprocessing:
    """The fitted encoding of a table's feature columns (and its target, when labelled)."""

    columns: tuple[EncodedColumn, ...]
    target: TargetEncoding | None = None

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        columns: Sequence[ColumnRule],
        target: str | None = None,
        task: str | None = None,
    ) -> TablePreprocessing:
        """Learn categories, fill values and classes from `frame`, the training rows only."""
        encoded = tuple(_fit_column(frame, rule) for rule in columns)
        fitted = None if target is None else fit_target(frame, target, task)
        return cls(encoded, fitted)

    @property
    def width(self) -> int:
        """Columns of the encoded matrix."""
        return sum(column.width for column in self.columns)

    def feature_names(self) -> list[str]:
        """The encoded matrix's column names, in order: `bill_length_mm`, `island=Biscoe`, `sex=male`."""
        return [name for column in self.columns for name in column.feature_names()]

    def scaled_features(self) -> np.ndarray:
        """True for the encoded columns Scaling should standardize (numeric values), False for the
        0/1 columns (one-hot, binary, missing indicators), which keep offset 0 and scale 1."""
        flags = []
        for column in self.columns:
            flags += [column.type == NUMERIC] + [False] * (column.width - 1)
        return np.array(flags, dtype=bool)

    def text_columns(self) -> list[str]:
        """Columns that `read_table` should read as text for this encoding."""
        names = [c.name for c in self.columns if c.type == CATEGORICAL or _is_text_values(c.categories)]
        if self.target is not None and self.target.classes and _is_text_values(self.target.classes):
            names.append(self.target.name)
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 matrix of the encoded features, one row per frame row. Columns other than
        the features (the target among them) are ignored; a missing feature column is refused."""
        source = source_of(frame)
        absent = [column.name for column in self.columns if column.name not in frame.columns]
        if absent:
            others = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
            raise DataError(f"{source}: no column {quoted(absent[0])}{others}; the model was trained on it")
        cells = [_encoded_cells(column, frame) for column in self.columns]
        out = np.empty((len(frame), self.width), dtype=np.float32)
        for first in range(0, len(frame), BLOCK_ROWS):
            _write_block(out[first : first + BLOCK_ROWS], self.columns, cells, first)
        return out

    def encode_target(self, frame: pd.DataFrame) -> np.ndarray:
        """int32 class indices (classification) or float32 values (regression) of the target column."""
        if self.target is None:
            raise DataError(f"{source_of(frame)}: this table has no target column")
        return _encode_target(self.target, frame)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready record for preprocessing.json (see `from_json` for its checks)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "columns": [
                {
                    "name": c.name,
                    "type": c.type,
                    "missing": c.missing,
                    "indicator": c.indicator,
                    "fill": c.fill,
                    "categories": list(c.categories),
                }
                for c in self.columns
            ],
            "target": None
            if self.target is None
            else {
                "name": self.target.name,
                "task": self.target.task,
                "classes": None if self.target.classes is None else list(self.target.classes),
            },
            "features": self.feature_names(),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "preprocessing.json") -> TablePreprocessing:
        """The encoding `to_json` recorded, read as untrusted input: every type, size and value is
        checked, and a bad one is one line naming `where` and the key."""
        return _Record(where).table(data)


def _fit_column(frame: pd.DataFrame, rule: ColumnRule) -> EncodedColumn:
    name = rule.name
    if name not in frame.columns:
        raise DataError(f"{source_of(frame)}: no column {quoted(name)}")
    column = frame[name]
    if rule.type == NUMERIC:
        values = numbers_of(frame, name)
        observed = values[~np.isnan(values)]
        _require_values(frame, name, len(observed))
        fill = _numeric_fill(observed, rule.missing)
        return EncodedColumn(name, NUMERIC, rule.missing, rule.indicator, fill)
    if is_numbers(column):
        numbers_of(frame, name)  # finite
    values, counts = distinct_counts(as_text(column) if rule.type == CATEGORICAL else column)
    _require_values(frame, name, len(values))
    if rule.type == CATEGORICAL:
        if len(values) > MAX_CATEGORIES:
            raise DataError(
                f"{located(frame, name)} has {len(values):,} categories in the training rows, more than "
                f"the {MAX_CATEGORIES} one-hot columns allowed; drop it, or declare it numeric if its values "
                "are numbers"
            )
        fill = values[int(np.argmax(counts))] if rule.missing == "most_frequent" else None
        return EncodedColumn(name, CATEGORICAL, rule.missing, rule.indicator, fill, tuple(values))
    if len(values) != 2:
        raise DataError(
            f"{located(frame, name)} is binary but has {len(values)} distinct value(s) in the training "
            f"rows; declare it categorical{' or drop it' if len(values) < 2 else ''}"
        )
    fill = _numeric_fill(np.repeat([0.0, 1.0], counts), rule.missing)  # of the observed cells as 0/1
    return EncodedColumn(name, BINARY, rule.missing, rule.indicator, fill, tuple(values))


def _require_values(frame: pd.DataFrame, name: str, count: int) -> None:
    if not count:
        raise DataError(
            f"{located(frame, name)} has no values in the training rows; drop it or give it values"
        )


def _numeric_fill(observed: np.ndarray, missing: str) -> float | None:
    if missing == "mean":
        return float(observed.mean())
    if missing == "median":
        return float(np.median(observed))
    if missing == "most_frequent":
        found, counts = np.unique(observed, return_counts=True)
        return float(found[int(np.argmax(counts))])  # ties: the smallest value
    return 0.0 if missing == "constant" else None


def _encoded_cells(column: EncodedColumn, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values, absent) of one column for every row: float32 numbers (numeric, binary) or int32
    category indices (categorical, -1 for none), fills applied; True where the cell was missing."""
    cells = frame[column.name]
    if column.type == CATEGORICAL:
        values = category_codes(cells, column.categories).astype(np.int32)
        absent = cells.isna().to_numpy()
        if column.fill is not None:
            values[absent] = column.categories.index(column.fill)
    else:
        numbers = numbers_of(frame, column.name) if column.type == NUMERIC else _binary(column, frame)
        absent = np.isnan(numbers)
        values = numbers.astype(np.float32)  # a copy: numbers may be the frame's own array
        values[absent] = np.nan if column.fill is None else column.fill
    if column.missing == "drop" and absent.any():
        raise DataError(
            f"{located(frame, column.name, int(np.argmax(absent)))}: missing, and "
            "the model was trained with missing: drop for it; fill the cell or leave the row out"
        )
    return values, absent


def _write_block(block: np.ndarray, columns: Sequence[EncodedColumn], cells: list, first: int) -> None:
    """Rows first..first + len(block) of the matrix. A block of rows at a time, all columns: the
    matrix is written once, in cache-sized pieces, where one column at a time would stride across
    all of it once per column (4 s instead of 0.5 s for a million rows of 219 columns)."""
    block[:] = 0.0
    last = first + len(block)
    start = 0
    for column, (values, absent) in zip(columns, cells):
        if column.type == CATEGORICAL:
            codes = values[first:last]
            rows = np.flatnonzero(codes >= 0)
            block[rows, start + codes[rows]] = 1.0
        else:
            block[:, start] = values[first:last]
        if column.indicator:
            block[:, start + column.width - 1] = absent[first:last]
        start += column.width


def _binary(column: EncodedColumn, frame: pd.DataFrame) -> np.ndarray:
    """0.0 / 1.0 for the two values, NaN where missing; a third value is refused."""
    negative, positive = column.categories
    if isinstance(positive, str):
        codes = category_codes(frame[column.name], column.categories)
        unknown = (codes < 0) & frame[column.name].notna().to_numpy()
        values = np.where(codes < 0, np.nan, codes.astype(np.float64))
    else:
        numbers = numbers_of(frame, column.name)
        values = np.where(numbers == positive, 1.0, np.where(numbers == negative, 0.0, np.nan))
        unknown = np.isnan(values) & ~np.isnan(numbers)
    if unknown.any():
        raise DataError(
            f"{located(frame, column.name, int(np.argmax(unknown)))}: a value other than the two the binary "
            "column had in training; fix it, or retrain with the column categorical"
        )
    return values


# --- the target ----------------------------------------------------------------------------


def fit_target(frame: pd.DataFrame, name: str, task: str | None) -> TargetEncoding:
    """The target of `frame`'s rows: its task (`task`, else classification for text or whole
    numbers) and classes; every row needs a label, and classification two classes or more."""
    source = source_of(frame)
    if name not in frame.columns:
        raise DataError(f"{source}: no target column {quoted(name)}")
    if task not in (None, CLASSIFICATION, REGRESSION):
        raise DataError(f"data.task: {task!r} is not a task; allowed: {CLASSIFICATION}, {REGRESSION}")
    _require_labels(frame, name)
    column = frame[name]
    values = numbers_of(frame, name) if is_numbers(column) else None  # finite, when numbers
    if task is None:
        task = CLASSIFICATION if values is None or bool(np.all(np.mod(values, 1) == 0)) else REGRESSION
    if task == REGRESSION:
        if values is None:
            raise DataError(
                f"data.task: regression needs a numeric target, but column {quoted(name)} of {source} holds "
                "text; set task: classification or name a numeric target column"
            )
        return TargetEncoding(name, REGRESSION)
    classes, _ = distinct_counts(column)
    if len(classes) < 2:
        raise DataError(
            f"{source}: the target {quoted(name)} has one class in the training rows; classification needs "
            "two or more (set task: regression for a numeric target)"
        )
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"{source}: the target {quoted(name)} has {len(classes):,} classes, more than {MAX_CLASSES:,}; "
            "set task: regression for a numeric target"
        )
    return TargetEncoding(name, CLASSIFICATION, tuple(classes))


def _require_labels(frame: pd.DataFrame, name: str) -> None:
    absent = frame[name].isna().to_numpy()
    if absent.any():
        raise DataError(
            f"{located(frame, name, int(np.argmax(absent)))} ({quoted(name)}): the target is "
            f"missing ({int(absent.sum()):,} rows miss it); give every row a label or leave those rows out"
        )


def _encode_target(target: TargetEncoding, frame: pd.DataFrame) -> np.ndarray:
    source = source_of(frame)
    if target.name not in frame.columns:
        raise DataError(f"{source}: no target column {quoted(target.name)}")
    _require_labels(frame, target.name)
    if target.task == REGRESSION:
        return numbers_of(frame, target.name).astype(np.float32)
    if _is_text_values(target.classes):
        indices = category_codes(frame[target.name], target.classes)
    else:
        numbers = numbers_of(frame, target.name)
        found = np.searchsorted(np.asarray(target.classes), numbers)
        found = np.minimum(found, len(target.classes) - 1)
        indices = np.where(np.asarray(target.classes)[found] == numbers, found, -1)
    unseen = indices < 0
    if unseen.any():
        raise DataError(
            f"{located(frame, target.name, int(np.argmax(unseen)))} ({quoted(target.name)}): a class the "
            f"training rows do not have ({int(unseen.sum()):,} such rows; training has {len(target.classes)} "
            "classes); hold out a stratified split or leave those rows out"
        )
    return indices.astype(np.int32)


def _is_text_values(values: Sequence | None) -> bool:
    return bool(values) and isinstance(values[0], str)


def _label(value: Any) -> str:
    """A value in a feature name: 1 rather than 1.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- reading the record back ---------------------------------------------------------------


class _Record:
    """Checks of preprocessing.json's table record, a file of a run directory: untrusted."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, expected: str) -> RunDirError:
        return RunDirError(f"{self.where}: {key}: expected {expected}; the file is damaged or was edited")

    def table(self, data: Any) -> TablePreprocessing:
        data = self.mapping(data, "table", ("format", "version", "columns", "target", "features"))
        if data["format"] != FORMAT or data["version"] != VERSION:
            raise self.fail("table.format", f"{FORMAT!r} version {VERSION}, not what a newer dnnlab writes")
        raw = data["columns"]
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_COLUMNS:
            raise self.fail("table.columns", f"a list of 1 to {MAX_COLUMNS:,} columns")
        columns = tuple(self.column(item, f"table.columns[{i}]") for i, item in enumerate(raw))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise self.fail("table.columns", "distinct column names")
        target = None if data["target"] is None else self.target(data["target"])
        if target is not None and target.name in names:
            raise self.fail("table.target.name", "a column that is not a feature")
        table = TablePreprocessing(columns, target)
        if data["features"] != table.feature_names():
            raise self.fail("table.features", "the names the columns give")
        return table

    def mapping(self, data: Any, key: str, keys: tuple[str, ...]) -> dict:
        if not isinstance(data, dict) or set(data) != set(keys):
            raise self.fail(key, f"an object with the keys {', '.join(keys)}")
        return data

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
            raise self.fail(key, f"a text of 1 to {MAX_NAME_CHARS} characters")
        return value

    def column(self, data: Any, key: str) -> EncodedColumn:
        data = self.mapping(data, key, ("name", "type", "missing", "indicator", "fill", "categories"))
        name = self.name(data["name"], f"{key}.name")
        kind, missing, indicator = data["type"], data["missing"], data["indicator"]
        if kind not in COLUMN_TYPES:
            raise self.fail(f"{key}.type", f"one of {', '.join(COLUMN_TYPES)}")
        if missing not in MISSING_POLICIES or (kind == CATEGORICAL and missing in ("mean", "median")):
            raise self.fail(f"{key}.missing", "a missing policy the column's type allows")
        if not isinstance(indicator, bool):
            raise self.fail(f"{key}.indicator", "true or false")
        categories = self.categories(data["categories"], kind, f"{key}.categories")
        fill = data["fill"]
        if missing == "drop" or (kind == CATEGORICAL and missing == "constant"):
            ok = fill is None
        elif kind == CATEGORICAL:
            ok = fill in categories
        else:
            ok = _is_finite_number(fill)
        if not ok:
            raise self.fail(f"{key}.fill", f"the fill value of a {kind} column with missing: {missing}")
        if kind != CATEGORICAL and fill is not None:
            fill = float(fill)
        return EncodedColumn(name, kind, missing, indicator, fill, categories)

    def categories(self, values: Any, kind: str, key: str) -> tuple:
        if kind == NUMERIC:
            if values != []:
                raise self.fail(key, "[] for a numeric column")
            return ()
        if kind == BINARY:
            texts = isinstance(values, list) and all(isinstance(v, str) for v in values)
            numbers = isinstance(values, list) and all(_is_finite_number(v) for v in values)
            if not (texts or numbers) or len(values) != 2 or values[0] == values[1]:
                raise self.fail(key, "two distinct values, both texts or both numbers")
            return tuple(values) if texts else tuple(float(v) for v in values)
        if (
            not isinstance(values, list)
            or not 0 < len(values) <= MAX_CATEGORIES
            or not all(isinstance(v, str) and len(v) <= MAX_NAME_CHARS for v in values)
            or len(set(values)) != len(values)
        ):
            raise self.fail(key, f"1 to {MAX_CATEGORIES} distinct texts")
        return tuple(values)

    def target(self, data: Any) -> TargetEncoding:
        data = self.mapping(data, "table.target", ("name", "task", "classes"))
        name = self.name(data["name"], "table.target.name")
        task, classes = data["task"], data["classes"]
        if task == REGRESSION and classes is None:
            return TargetEncoding(name, REGRESSION)
        valid = (
            task == CLASSIFICATION
            and isinstance(classes, list)
            and 2 <= len(classes) <= MAX_CLASSES
            and (
                all(isinstance(c, str) and len(c) <= MAX_NAME_CHARS for c in classes)
                or all(_is_finite_number(c) for c in classes)
            )
            and len(set(classes)) == len(classes)
        )
        if not valid:
            expected = (
                f"regression with classes null, or classification with 2 to {MAX_CLASSES} distinct classes"
            )
            raise self.fail("table.target", expected)
        numbers = not isinstance(classes[0], str)
        if numbers and classes != sorted(classes):
            raise self.fail("table.target.classes", "numeric classes in increasing order")
        return TargetEncoding(name, CLASSIFICATION, tuple(map(float, classes)) if numbers else tuple(classes))


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
