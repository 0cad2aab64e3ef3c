"""The files a user hands to prediction commands (`--data FILE`): examples, and labels when
present.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from dnnlab.data.csv_source import csv_labels, is_number, split_csv
from dnnlab.data.npz_source import npz_cell
from dnnlab.data.user_files import csv_rows, npz_headers, read_npz, require_finite
from dnnlab.errors import DataError

LABEL_COLUMNS = ("y", "target", "label")  # label column names that load_array_file recognizes


def load_array_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Examples (and labels, when present) from a file for `mc-predict --data FILE`.

    A .npz gives array `x` (or `x_test`) and optional `y` (or `y_test`); in a .csv every column
    is a feature except one named y, target or label. The arrays come back unscaled; features
    (and numeric labels) must be finite.
    """
    path = Path(path)
    key = "--data"
    if path.suffix.lower() not in (".npz", ".csv"):
        received = path.suffix or "no suffix"
        raise DataError(f"{key}: {path}: expected a .npz or .csv file, received '{received}'")
    if path.suffix.lower() == ".npz":
        return _npz_examples(path, key)
    rows = list(csv_rows(path, key))
    if not rows:
        raise DataError(f"{key}: {path} is empty")
    header = rows[0][1]
    if all(is_number(cell) for cell in header):  # no header row: every column is a feature
        header, data = [f"column {i + 1}" for i in range(len(header))], rows
    else:
        data = rows[1:]
    label = next((i for i, name in enumerate(header) if name.lower() in LABEL_COLUMNS), None)
    x, column = split_csv(path, header, data, label, key)
    if not len(x):
        raise DataError(f"{key}: {path} has a header but no rows of examples")
    if column is None:
        return x.astype(np.float32), None
    if all(is_number(cell) for _, cell in column):
        return x.astype(np.float32), csv_labels(path, column, label + 1, key)[0]
    return x.astype(np.float32), np.array([cell for _, cell in column])


def _npz_examples(path: Path, key: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Array x (or x_test) and y (or y_test) of an .npz given with --data."""
    headers = npz_headers(path, key)
    x_key = next((k for k in ("x", "x_test") if k in headers), None)
    if x_key is None:
        raise DataError(f"{key}: {path} needs an array named x; it has: {', '.join(headers) or 'none'}")
    y_key = {"x": "y", "x_test": "y_test"}[x_key]
    if not headers[x_key].shape or not headers[x_key].shape[0]:
        raise DataError(f"{key}: {path}: {x_key} has no rows; expected one row per example")
    found = read_npz(path, key, (x_key, y_key))
    for name, values in found.items():
        require_finite(values, key, functools.partial(npz_cell, path, name))
    return found[x_key], found.get(y_key)
