"""`{type: csv, path, target}`: a table of numbers with a target column, read as untrusted
input. A CSV with a feature column that holds no number at all (text categories), or whose spec
chooses columns (features, drop, columns), is a table instead: `describe_csv` says so and
datasets reads it through `table_source`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnlab.data.source import (
    CLASSIFICATION,
    PATH_KEY,
    REGRESSION,
    UNLABELED,
    RawArrays,
    SourceFacts,
    infer_task,
    no_labels,
)
from dnnlab.data.user_files import csv_rows, require_finite
from dnnlab.errors import DataError
from dnnlab.spec.data import CsvSource


def _target_index(path: Path, header: list[str], target: str) -> int:
    if target not in header:  # the header's names are the file's contents: counted, not shown
        raise DataError(
            f"data.dataset.target: no column '{target}' in the header row of {path} "
            f"({len(header)} columns); name the target column exactly as the header does"
        )
    return header.index(target)


def _csv_column(path: Path, target: str) -> tuple[list[str], list[tuple[int, str]], list[str]]:
    """The header, the target column's (line number, cell), without keeping the features, and
    the feature columns in which no cell is a number (text: the file is a table)."""
    rows = csv_rows(path, PATH_KEY)
    _, header = next(rows, (0, []))
    if not header:
        raise DataError(f"{PATH_KEY}: {path} is empty; expected a header row and data rows")
    index = _target_index(path, header, target)
    if len(header) < 2:
        raise DataError(f"{PATH_KEY}: {path} has no feature columns besides '{target}'")
    column = []
    no_number = set(range(len(header))) - {index}  # after a row or two, empty for a file of numbers
    for number, row in rows:
        _check_width(path, number, row, header, PATH_KEY)
        column.append((number, row[index]))
        if no_number:
            no_number = {i for i in no_number if not _may_be_number(row[i])}
    if not column:
        raise DataError(f"{PATH_KEY}: {path} has a header but no data rows")
    return header, column, [header[i] for i in sorted(no_number)]


def _check_width(path: Path, number: int, row: list[str], header: list[str], key: str) -> None:
    if len(row) != len(header):
        raise DataError(f"{key}: {path} line {number} has {len(row)} cells, but the header has {len(header)}")


def csv_labels(
    path: Path, column: list[tuple[int, str]], position: int, key: str
) -> tuple[np.ndarray, list[str] | None]:
    """Numeric labels (finite), or indices into the sorted text labels and those labels;
    `position` is the label column's number, counted from 1, for messages. An empty cell is
    refused: read as text it would become a class of its own."""
    for line, cell in column:
        if not cell.strip():
            raise DataError(
                f"{key}: {path} line {line}, column {position}: the label is missing; give every row a "
                "label or leave the row out"
            )
    try:
        labels = np.array([float(cell) for _, cell in column])
    except ValueError:
        names = sorted({cell for _, cell in column})
        lookup = {label: i for i, label in enumerate(names)}
        return np.array([lookup[cell] for _, cell in column]), names
    require_finite(labels, key, lambda row, _: f"{path} line {column[row][0]}, column {position}")
    return labels, None


def _to_floats(path: Path, positions: list[int], rows: list[tuple[int, list[str]]], key: str) -> np.ndarray:
    """The feature cells as finite float64; `positions` are their column numbers (from 1)."""

    def where(row: int, column: int | None) -> str:
        return f"{path} line {rows[row][0]}, column {positions[column or 0]}"

    try:
        x = np.array([cells for _, cells in rows], dtype=np.float64).reshape(len(rows), len(positions))
    except ValueError:
        for row, (_, cells) in enumerate(rows):
            for column, cell in enumerate(cells):
                if not is_number(cell):
                    raise DataError(
                        f"{key}: {where(row, column)} is not a number{_as_table_hint(key)}"
                    ) from None
        raise
    require_finite(x, key, where)
    return x


def _as_table_hint(key: str) -> str:
    """For the spec's file: how to have it read as a table (missing cells filled, text one-hot)."""
    if key != PATH_KEY:
        return ""
    return (
        "; to fill missing cells or encode text, declare the column under data.dataset.columns "
        "(type and missing) and the file is read as a table"
    )


def describe_csv(source: CsvSource, task: str | None) -> SourceFacts:
    path = Path(source.path)
    if source.target is None:  # every column is a feature: inputs an autoencoder can train on
        _, header = next(csv_rows(path, PATH_KEY), (0, []))
        if not header:
            raise DataError(f"{PATH_KEY}: {path} is empty; expected a header row and data rows")
        return SourceFacts((len(header),), UNLABELED, f"csv:{source.path}")
    header, column, text = _csv_column(path, source.target)
    if text:  # categories as text: a table, read by pandas (table_source)
        return SourceFacts((len(header) - 1,), CLASSIFICATION, f"csv:{source.path}", table=True)
    labels, names = csv_labels(path, column, header.index(source.target) + 1, PATH_KEY)
    if names is not None and task == REGRESSION:
        raise DataError(
            f"data.task: regression needs a numeric target, but column '{source.target}' of {path} "
            "holds text; set task: classification or point data.dataset.target at a numeric column"
        )
    inferred = CLASSIFICATION if names is not None else infer_task(labels)
    return SourceFacts((len(header) - 1,), inferred, f"csv:{source.path}", labels=labels, label_names=names)


def load_csv(source: CsvSource, seed: int, task: str) -> RawArrays:
    path, target = Path(source.path), source.target
    rows = list(csv_rows(path, PATH_KEY))
    header = rows[0][1]
    if target is None:
        if len(rows) < 2:
            raise DataError(f"{PATH_KEY}: {path} has a header but no data rows")
        x, _ = split_csv(path, header, rows[1:], None, PATH_KEY)
        return RawArrays(x, no_labels(x), None, None)
    index = _target_index(path, header, target)
    x, column = split_csv(path, header, rows[1:], index, PATH_KEY)
    labels, names = csv_labels(path, column, index + 1, PATH_KEY)
    return RawArrays(x, labels, None, None, names)


def split_csv(
    path: Path, header: list[str], data: list[tuple[int, list[str]]], label: int | None, key: str
) -> tuple[np.ndarray, list[tuple[int, str]] | None]:
    """Features as floats and the label column's (line, cell), once every row's width is checked."""
    for number, cells in data:
        _check_width(path, number, cells, header, key)
    if label is None:
        return _to_floats(path, list(range(1, len(header) + 1)), data, key), None
    positions = [i + 1 for i in range(len(header)) if i != label]
    features = [(n, cells[:label] + cells[label + 1 :]) for n, cells in data]
    return _to_floats(path, positions, features, key), [(n, cells[label]) for n, cells in data]


def _may_be_number(cell: str) -> bool:
    """`is_number`, without its exception for the usual text cell: empty, or a letter first
    (but i and n: inf, nan). A tenth of the time on columns of words."""
    first = cell[:1]
    if not first or (first.isalpha() and first not in "iInN"):
        return False
    return is_number(cell)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
