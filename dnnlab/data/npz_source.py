"""`{type: npz, path}`: arrays in a NumPy archive, read as untrusted input."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from dnnlab.data.source import (
    CLASSIFICATION,
    PATH_KEY,
    UNLABELED,
    RawArrays,
    SourceFacts,
    infer_task,
    no_labels,
)
from dnnlab.data.user_files import ArrayHeader, npz_headers, read_npz, require_finite
from dnnlab.errors import DataError
from dnnlab.spec.data import NpzSource

NPZ_PARTS = ("x_train", "y_train", "x_test", "y_test")


def _npz_labels(path: Path) -> np.ndarray:
    """y_train and y_test as one flat array; a NaN or infinite label is an error."""
    parts = read_npz(path, PATH_KEY, ("y_train", "y_test"))
    for part, values in parts.items():
        require_finite(values, PATH_KEY, functools.partial(npz_cell, path, part))
    return np.concatenate([parts[k].reshape(-1) for k in ("y_train", "y_test") if k in parts])


def describe_npz(source: NpzSource, task: str | None) -> SourceFacts:
    path = Path(source.path)
    headers = npz_headers(path, PATH_KEY)
    if "x_train" in headers and "y_train" not in headers and "y_test" not in headers:
        return _describe_unlabeled(path, headers, source)
    if "x_train" not in headers or "y_train" not in headers:
        raise DataError(
            f"{PATH_KEY}: {path} needs arrays x_train and y_train; it has: {', '.join(headers) or 'none'}"
        )
    _check_npz_rows(path, headers)
    shape = headers["x_train"].shape[1:]
    if not shape:
        raise DataError(
            f"{PATH_KEY}: x_train in {path} is 1-D; expected one row per example, shape (n, features...)"
        )
    labels = _npz_labels(path)
    inferred = infer_task(labels)
    label_shape = headers["y_train"].shape[1:]
    if (task or inferred) == CLASSIFICATION and label_shape not in ((), (1,)):
        raise DataError(
            f"{PATH_KEY}: y_train in {path} has shape (n, *{label_shape}); "
            "classification needs class indices of shape (n,), e.g. the argmax of one-hot labels"
        )
    return SourceFacts(shape, inferred, f"npz:{source.path}", labels=labels)


def _describe_unlabeled(path: Path, headers: dict[str, ArrayHeader], source: NpzSource) -> SourceFacts:
    """x_train (and x_test) without labels: inputs an autoencoder can train on."""
    shape = headers["x_train"].shape[1:]
    if not headers["x_train"].shape or headers["x_train"].shape[0] == 0 or not shape:
        raise DataError(f"{PATH_KEY}: x_train in {path} needs shape (n, features...) with n >= 1")
    test = headers.get("x_test")
    if test is not None and test.shape[1:] != shape:
        raise DataError(f"{PATH_KEY}: x_test in {path} has rows of shape {test.shape[1:]}, x_train {shape}")
    return SourceFacts(shape, UNLABELED, f"npz:{source.path}")


def _check_npz_rows(path: Path, headers: dict[str, ArrayHeader]) -> None:
    """Both or neither of x_test and y_test, matching row counts, at least one training row."""
    if ("x_test" in headers) != ("y_test" in headers):
        raise DataError(f"{PATH_KEY}: {path} has only one of x_test and y_test; give both or neither")
    for part in ("train", "test"):
        x, y = headers.get(f"x_{part}"), headers.get(f"y_{part}")
        if x is None or y is None:
            continue
        rows = [h.shape[0] if h.shape else None for h in (x, y)]
        if rows[0] != rows[1]:
            raise DataError(
                f"{PATH_KEY}: {path}: x_{part} has {rows[0]} rows but y_{part} has {rows[1]}; they must match"
            )
    if not headers["x_train"].shape or headers["x_train"].shape[0] == 0:
        raise DataError(f"{PATH_KEY}: {path}: x_train has no rows; expected at least one example")


def load_npz(source: NpzSource, seed: int, task: str) -> RawArrays:
    path = Path(source.path)
    found = read_npz(path, PATH_KEY, NPZ_PARTS)
    for part in ("x_train", "x_test"):
        if part in found:
            where = functools.partial(npz_cell, path, part)
            require_finite(found[part], PATH_KEY, where)
    if "y_train" not in found:  # inputs only: placeholder labels that no autoencoder reads
        test = found.get("x_test")
        return RawArrays(
            found["x_train"], no_labels(found["x_train"]), test, None if test is None else no_labels(test)
        )
    return RawArrays(found["x_train"], found["y_train"], found.get("x_test"), found.get("y_test"))


def npz_cell(path: Path, part: str, row: int, column: int | None = None) -> str:
    """`x_train[5]`: a row of an array, indexed from 0 as numpy does."""
    return f"{path}: {part}[{row}]"
