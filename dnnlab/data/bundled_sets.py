"""scikit-learn's bundled classification sets, read from its data files without importing it.

`sklearn.datasets.load_digits()` and its siblings cost about 0.8 s of import (scikit-learn and
SciPy) to read a file of a few kilobytes. These readers parse the same files the same way, giving
the same arrays and dtypes (tests/test_holdout.py compares them with scikit-learn's loaders);
scikit-learn stays the package that ships the files. Sets whose loader transforms the file
(diabetes is standardized by scikit-learn's own `scale`) are not here and are loaded by
scikit-learn itself.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np


def _digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        table = np.loadtxt(handle, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int, copy=False)


def _with_header(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The format of iris.csv, wine_data.csv and breast_cancer.csv: a first line `rows,
    features, class names...`, then each row's features and its integer class."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        n_samples, n_features = int(header[0]), int(header[1])
        x = np.empty((n_samples, n_features))
        y = np.empty((n_samples,), dtype=int)
        for i, row in enumerate(rows):
            x[i] = np.asarray(row[:-1], dtype=np.float64)
            y[i] = np.asarray(row[-1], dtype=int)
    return x, y


# A set's file inside sklearn/datasets/data and how to read it.
FILES = {
    "digits": ("digits.csv.gz", _digits),
    "iris": ("iris.csv", _with_header),
    "wine": ("wine_data.csv", _with_header),
    "breast_cancer": ("breast_cancer.csv", _with_header),
}


def load(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """`load_<name>(return_X_y=True)`'s arrays, or None for a set not read here or a scikit-learn
    installed without its data files (the caller then asks scikit-learn)."""
    if name not in FILES:
        return None
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    file_name, read = FILES[name]
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / file_name
    if not path.is_file():
        return None
    return read(path)
