"""A run's table encoding (data.tables.TablePreprocessing) as TensorFlow ops, so that the SavedModel
of `dnnlab export` takes a table's raw rows: one text input per feature column, each cell as a
CSV has it, and computes what `TablePreprocessing.transform` computes in Python.

Cell by cell, as table_files reads a CSV: leading spaces are skipped, a cell in MISSING_MARKERS
is missing, and text is compared without its surrounding spaces; True/TRUE/true and
False/FALSE/false are 1 and 0 (pandas's booleans). Per column:
  numeric      the number (float64, then float32, as pandas then tables do); missing -> the fill.
  binary       1.0 for the second value, 0.0 for the first; missing -> the fill.
  categorical  one-hot by comparing with the categories: an unseen category (or a missing cell
               under `constant`) is an all-zero row; most_frequent fills the commonest category.
  indicator    1.0 where the cell was missing.
What predict refuses, the graph refuses too (InvalidArgumentError): a cell that is not a number
in a numeric column, an infinite one, a third value in a binary column, a missing cell where the
run was trained with `missing: drop`.

TFLite's built-in ops and ONNX have no string-to-number conversion, so those exports take the
encoded vector instead (see export.py).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from dnnlab.data.table_files import MISSING_MARKERS
from dnnlab.data.tables import BINARY, CATEGORICAL, NUMERIC, EncodedColumn, TablePreprocessing

TRUE_CELLS, FALSE_CELLS = ("True", "TRUE", "true"), ("False", "FALSE", "false")  # pandas's defaults
_SIGNATURE_NAME = re.compile(r"[^A-Za-z0-9_.\-/]")


def input_names(encoding: TablePreprocessing) -> dict[str, str]:
    """Each feature column's input name in the SavedModel's signature: the column's name where
    TensorFlow accepts it (letters, digits, `_.-/`, not first `_-/`), else a cleaned copy
    (`home town` -> `home_town`), made unique."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in encoding.columns:
        name = _SIGNATURE_NAME.sub("_", column.name)
        if not name or not name[0].isalnum():
            name = "c" + name
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}_{n}", n + 1
        taken.add(unique)
        names[column.name] = unique
    return names


def input_signature(encoding: TablePreprocessing, tf: Any) -> dict[str, Any]:
    """{column: TensorSpec([None], string)}, named as `input_names` says."""
    return {
        column: tf.TensorSpec([None], tf.string, name=name) for column, name in input_names(encoding).items()
    }


def encode(cells: dict[str, Any], encoding: TablePreprocessing, tf: Any) -> Any:
    """The float32 matrix [rows, encoding.width] of the text cells `cells[column]` ([rows])."""
    parts = [_column(cells[column.name], column, tf) for column in encoding.columns]
    return tf.concat(parts, axis=1)


def _column(raw: Any, column: EncodedColumn, tf: Any) -> Any:
    missing = _is_missing(raw, tf)
    text = tf.strings.strip(raw)
    if column.missing == "drop":
        _refuse(
            missing, f"column {column.name!r}: a missing cell, and the run was trained with missing: drop", tf
        )
    if column.type == CATEGORICAL:
        categories = np.asarray(column.categories, dtype=object).astype(str)
        if column.fill is not None:
            text = tf.where(missing, tf.fill(tf.shape(text), str(column.fill)), text)
        value = tf.cast(tf.equal(text[:, None], tf.constant(categories)[None, :]), tf.float32)
    else:
        if column.type == BINARY and isinstance(column.categories[1], str):
            value = _text_binary(text, missing, column, tf)
        else:
            value = _numbers(text, missing, column, tf)
        fill = np.float32(np.nan if column.fill is None else column.fill)
        value = tf.where(missing, tf.fill(tf.shape(value), fill), value)[:, None]
    if column.indicator:
        value = tf.concat([value, tf.cast(missing, tf.float32)[:, None]], axis=1)
    return value


def _is_missing(raw: Any, tf: Any) -> Any:
    """pandas's rule: the cell after its leading spaces (skipinitialspace) is a missing marker."""
    lead_trimmed = tf.strings.regex_replace(raw, "^ +", "")
    markers = tf.constant(list(MISSING_MARKERS))
    return tf.reduce_any(tf.equal(lead_trimmed[:, None], markers[None, :]), axis=1)


def _numbers(text: Any, missing: Any, column: EncodedColumn, tf: Any) -> Any:
    """float32 of the cells (missing ones 0 until filled); a binary column of numbers as 0/1."""
    text = tf.where(missing, tf.fill(tf.shape(text), "0"), text)
    for cells, number in ((TRUE_CELLS, "1"), (FALSE_CELLS, "0")):
        is_it = tf.reduce_any(tf.equal(text[:, None], tf.constant(list(cells))[None, :]), axis=1)
        text = tf.where(is_it, tf.fill(tf.shape(text), number), text)
    numbers = tf.strings.to_number(text, tf.float64)  # refuses a cell that is not a number
    _refuse(tf.math.is_inf(numbers), f"column {column.name!r}: an infinite number", tf)
    if column.type == NUMERIC:
        return tf.cast(numbers, tf.float32)
    negative, positive = (float(v) for v in column.categories)
    known = tf.logical_or(tf.equal(numbers, negative), tf.equal(numbers, positive))
    _refuse(tf.logical_and(~known, ~missing), _third_value(column), tf)
    return tf.cast(tf.equal(numbers, positive), tf.float32)


def _text_binary(text: Any, missing: Any, column: EncodedColumn, tf: Any) -> Any:
    negative, positive = column.categories
    known = tf.logical_or(tf.equal(text, negative), tf.equal(text, positive))
    _refuse(tf.logical_and(~known, ~missing), _third_value(column), tf)
    return tf.cast(tf.equal(text, positive), tf.float32)


def _third_value(column: EncodedColumn) -> str:
    return f"column {column.name!r}: a value other than the two the binary column had in training"


def _refuse(bad: Any, message: str, tf: Any) -> None:
    """An InvalidArgumentError with `message` when any cell is `bad`."""
    tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])
