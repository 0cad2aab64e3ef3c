"""Datasets: the named sets, npz/csv files and synthetic data; class filters, splits, scaling.

`describe` answers shapes and task without loading anything heavy (for `check` and `summary`),
`load` returns the arrays a run trains on, and `Scaling` is the transform recorded in
preprocessing.json so that prediction applies exactly what training did. Neither imports
TensorFlow; Keras is imported only to download a set that is not in its cache yet. Each kind of
source (Keras set, scikit-learn set, npz, csv, synthetic) has one `Reader` in `READERS`, its
describe and load side by side.

Order of operations in `load`: source -> test split (held out with `data.split_seed` when the source has
none) -> `classes` filter and relabelling -> validation from the front of the training rows ->
`train_size` (the first N remaining training rows) -> scaling fitted on those training rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import runtime
from dnnlab.data import bundled_sets, holdout, keras_datasets
from dnnlab.data.user_files import ArrayHeader, csv_rows, npz_headers, read_npz, require_finite
from dnnlab.errors import DataError
from dnnlab.spec.models import KERAS_DATASETS, CsvSource, DataSpec, NpzSource, SyntheticSource

CLASSIFICATION = "classification"
REGRESSION = "regression"

# One example's shape and the number of classes (None: regression) of every named set.
NAMED_SETS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "mnist": ((28, 28), 10),
    "fashion_mnist": ((28, 28), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "digits": ((64,), 10),
    "iris": ((4,), 3),
    "wine": ((13,), 3),
    "breast_cancer": ((30,), 2),
    "diabetes": ((10,), None),
}

LABEL_COLUMNS = ("y", "target", "label")  # label column names that load_array_file recognizes


@dataclass(frozen=True)
class DatasetInfo:
    """What the model builder needs to know about a dataset."""

    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None
    name: str


@dataclass
class Scaling:
    """An input transform `(x - offset) / scale` whose statistics come from the training split.

    standardize: per-feature mean and std (std 0 -> 1); unit: the training set's global min and
    range (0 and 255 for uint8 pixels); none: a float32 cast only.
    """

    method: str = "none"
    offset: Any = 0.0
    scale: Any = 1.0

    def __post_init__(self) -> None:
        self.offset = np.asarray(self.offset, dtype=np.float32)
        self.scale = np.asarray(self.scale, dtype=np.float32)

    @classmethod
    def fit(cls, method: str, x_train: np.ndarray) -> Scaling:
        if method == "standardize":
            mean, std = _moments(x_train)
            return cls(method, mean, np.where(std == 0, 1.0, std))
        if method == "unit":
            if x_train.dtype == np.uint8:
                low, high = 0.0, 255.0
            else:
                low, high = float(x_train.min()), float(x_train.max())
            return cls(method, low, (high - low) or 1.0)
        if method == "none":
            return cls("none")
        raise DataError(f"data.scaling: unknown method {method!r}; expected one of: none, unit, standardize")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The transformed copy of `x`, float32."""
        out = np.array(x, dtype=np.float32, copy=True)
        if self.method == "none":
            return out
        if self.offset.ndim and out.shape[1:] != self.offset.shape:
            raise DataError(
                f"input shape {tuple(out.shape[1:])} does not match the training data's "
                f"{tuple(self.offset.shape)}"
            )
        out -= self.offset
        out /= self.scale
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaling:
        return cls(data["method"], data.get("offset", 0.0), data.get("scale", 1.0))


def _moments(x: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std in float64, a block of rows at a time (CIFAR in float64 at once
    would need over a gigabyte)."""
    total = np.zeros(x.shape[1:])
    for start in range(0, len(x), rows):
        total += x[start : start + rows].sum(axis=0, dtype=np.float64)
    mean = total / max(len(x), 1)
    squares = np.zeros(x.shape[1:])
    for start in range(0, len(x), rows):
        squares += ((x[start : start + rows] - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squares / max(len(x), 1))


@dataclass
class Dataset:
    """The arrays a run trains on, already filtered, split and scaled."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    scaling: Scaling
    class_labels: list | None

    def preprocessing(self) -> dict[str, Any]:
        """What preprocessing.json records, so prediction applies the same transform."""
        return {
            "scaling": self.scaling.to_dict(),
            "input_shape": list(self.info.input_shape),
            "task": self.info.task,
            "num_classes": self.info.num_classes,
            "class_labels": self.class_labels,
            "dataset": self.info.name,
        }


# --- describe ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFacts:
    """What a source tells about itself before `task` and `classes` are applied."""

    shape: tuple[int, ...]
    task: str  # inferred from the source
    name: str
    num_classes: int | None = None  # known without reading labels (named and synthetic sets)
    labels: np.ndarray | None = None  # the labels present, for file sources
    label_names: list[str] | None = None  # text labels of a csv target, index = label


def describe(spec: DataSpec) -> DatasetInfo:
    """Shape, task and class count without loading the examples (offline, no TensorFlow).

    Named and synthetic sets come from tables and fields; an npz file gives its array headers
    and labels, a csv file its header and label column. Also checks `task` and `classes`.
    """
    found = reader(spec.dataset).describe(spec.dataset, spec.task)
    task = spec.task or found.task
    if task == REGRESSION:
        if spec.classes is not None:
            raise DataError("data.classes: only applies to classification, and this task is regression")
        return DatasetInfo(found.shape, REGRESSION, None, found.name)
    labels, names, known_classes = found.labels, found.label_names, found.num_classes
    if labels is not None and names is None:
        _check_class_labels(labels, found.name)
    if labels is not None and spec.classes is None:
        _check_two_classes(labels, found.name)
    present = list(range(known_classes)) if known_classes else sorted(int(v) for v in np.unique(labels))
    num_classes = known_classes or (len(names) if names else max(present) + 1)
    if spec.classes is not None:
        _check_classes(spec.classes, present, found.name, names)
        num_classes = len(spec.classes)
    return DatasetInfo(found.shape, CLASSIFICATION, num_classes, found.name)


def _infer_task(labels: np.ndarray) -> str:
    """Integer-valued labels mean classification, anything else regression."""
    if labels.dtype.kind in "iub":
        return CLASSIFICATION
    integral = (
        labels.dtype.kind == "f"
        and labels.size > 0
        and bool(np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)))
    )
    return CLASSIFICATION if integral else REGRESSION


def _check_class_labels(labels: np.ndarray, name: str) -> None:
    if labels.size and (np.any(labels < 0) or np.any(labels != np.round(labels))):
        bad = labels[(labels < 0) | (labels != np.round(labels))][0]
        raise DataError(
            f"data.task: classification needs labels 0..k-1, but {name} has the label {bad}; "
            "set task: regression for a numeric target"
        )


def _check_two_classes(labels: np.ndarray, name: str) -> None:
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"data.task: classification needs at least two classes, but every label of {name} is the "
            "same; set task: regression for a numeric target, or use data with two or more classes"
        )


def _check_classes(classes: list[int], present: list[int], name: str, names: list[str] | None) -> None:
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise DataError(f"data.classes: {duplicates[0]} is listed twice; each class may appear once")
    for wanted in classes:
        if wanted not in present:
            raise DataError(
                f"data.classes: {wanted} is not a class of {name}; allowed: {_class_listing(present, names)}"
            )


def _class_listing(present: list[int], names: list[str] | None) -> str:
    if names:
        return ", ".join(f"{i} ({label})" for i, label in enumerate(names))
    if present == list(range(len(present))):
        return f"0..{len(present) - 1}"
    return ", ".join(str(c) for c in present)


# --- load ----------------------------------------------------------------------------------


@dataclass
class _Raw:
    """A source's arrays before filters, splits and scaling."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    label_names: list[str] | None = None  # text labels of a csv target, index = label


def load(spec: DataSpec) -> Dataset:
    """Load, filter, split and scale the data as the spec says; deterministic for `split_seed`.

    `split_seed`, not the run's `seed`, draws the hold-out and synthetic data, so runs that differ
    only in `seed` see the same rows and scaling statistics. Sources without a test split hold
    out `data.test` (stratified for classification) after a seeded shuffle. `classes` keeps and
    relabels those classes 0..k-1 in the given order; the validation rows are the first
    `validation` training rows (or that fraction); `train_size` keeps the first N training rows
    left after that; scaling is fitted on those rows only.
    """
    info = describe(spec)
    raw = reader(spec.dataset).load(spec.dataset, spec.split_seed, info.task)
    if raw.x_test is None:
        raw.x_train, raw.x_test, raw.y_train, raw.y_test = _hold_out(
            raw.x_train, raw.y_train, spec.test, spec.split_seed, info.task == CLASSIFICATION
        )
    y_train = _labels(raw.y_train, info.task)
    y_test = _labels(raw.y_test, info.task)
    x_train, x_test = raw.x_train, raw.x_test

    class_labels: list | None = list(raw.label_names) if raw.label_names else None
    if spec.classes is not None:
        x_train, y_train = _keep_classes(x_train, y_train, spec.classes)
        x_test, y_test = _keep_classes(x_test, y_test, spec.classes)
        names = raw.label_names
        class_labels = [names[c] for c in spec.classes] if names else list(spec.classes)
        if not len(y_train):
            raise DataError(f"data.classes: no training rows of classes {spec.classes} in {info.name}")

    x_val = y_val = None
    n_val = _validation_rows(spec.validation, len(x_train), spec.classes is not None)
    if n_val:
        x_val, y_val = x_train[:n_val], y_train[:n_val]
        x_train, y_train = x_train[n_val:], y_train[n_val:]
    if spec.train_size is not None:
        if spec.train_size > len(x_train):
            raise DataError(
                f"data.train_size: {spec.train_size} is more than the {len(x_train)} training rows "
                f"left{' after data.classes' if spec.classes else ''} and data.validation; "
                f"allowed: 1..{len(x_train)}"
            )
        x_train, y_train = x_train[: spec.train_size], y_train[: spec.train_size]

    scaling = Scaling.fit(spec.scaling, x_train)
    info = DatasetInfo(tuple(x_train.shape[1:]), info.task, info.num_classes, info.name)
    return Dataset(
        info=info,
        x_train=scaling.apply(x_train),
        y_train=y_train,
        x_val=None if x_val is None else scaling.apply(x_val),
        y_val=y_val,
        x_test=None if x_test is None or not len(x_test) else scaling.apply(x_test),
        y_test=None if x_test is None or not len(x_test) else y_test,
        scaling=scaling,
        class_labels=class_labels,
    )


def check_values(spec: DataSpec) -> None:
    """Read a file source's values once and drop them, so that a NaN fails before a sweep starts
    trials that would each fail on it; named and synthetic sets need no such check."""
    source = spec.dataset
    if isinstance(source, (NpzSource, CsvSource)):
        reader(source).load(source, spec.split_seed, describe(spec).task)


def _labels(y: np.ndarray | None, task: str) -> np.ndarray | None:
    """int32 class indices of shape (n,), or float32 targets as given."""
    if y is None:
        return None
    if task == CLASSIFICATION:
        return np.asarray(y).reshape(len(y)).astype(np.int32)
    return np.asarray(y, dtype=np.float32)


def _keep_classes(x: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isin(y, classes)
    relabel = np.full(max(int(y.max(initial=0)), *classes) + 1, -1, dtype=np.int32)
    relabel[classes] = np.arange(len(classes), dtype=np.int32)
    return x[keep], relabel[y[keep]]


def _validation_rows(validation: int | float, n_train: int, filtered: bool) -> int:
    if isinstance(validation, float):
        n_val = max(1, int(round(validation * n_train)))
    else:
        n_val = validation
    if n_val and n_val >= n_train:
        where = " after data.classes" if filtered else ""
        raise DataError(
            f"data.validation: {validation} leaves no training rows out of the {n_train}{where}; "
            f"use fewer than {n_train} rows or a fraction in (0, 1)"
        )
    return n_val


def _hold_out(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with the seed and hold out a test fraction; stratified when it can be. The rows
    are scikit-learn's `train_test_split`'s (see dnnlab.data.holdout)."""
    if len(x) < 2:
        raise DataError(f"data.test: {len(x)} row(s) cannot be split into training and test rows")
    try:
        train, test = holdout.split_indices(y, fraction, seed, stratify)
    except holdout.SplitError:
        if not stratify:
            raise DataError(f"data.test: {fraction} of {len(x)} rows leaves an empty split") from None
        # Too few examples of some class to stratify: a plain seeded split still works.
        train, test = holdout.split_indices(y, fraction, seed, stratify=False)
    return x[train], x[test], y[train], y[test]


# --- named sets and synthetic data ---------------------------------------------------------


def _describe_named(name: str, task: str | None) -> SourceFacts:
    shape, known_classes = NAMED_SETS[name]
    inferred = CLASSIFICATION if known_classes else REGRESSION
    if task == CLASSIFICATION and inferred == REGRESSION:
        raise DataError(f"data.task: {name} is a regression set; use task: regression or omit it")
    return SourceFacts(shape, inferred, name, known_classes)


def _load_keras(name: str, seed: int, task: str) -> _Raw:
    return _Raw(*keras_datasets.load(name))


def _load_sklearn(name: str, seed: int, task: str) -> _Raw:
    arrays = bundled_sets.load(name)
    if arrays is None:
        with runtime.optional_imports_skipped(runtime.OPTIONAL_FOR_SKLEARN):
            import sklearn.datasets

        arrays = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    return _Raw(*arrays, None, None)


def _describe_synthetic(source: SyntheticSource, task: str | None) -> SourceFacts:
    return SourceFacts(tuple(source.shape), source.task, "synthetic", source.classes)


def _load_synthetic(source: SyntheticSource, seed: int, task: str) -> _Raw:
    """Seeded, learnable data: class prototypes plus noise, or a smooth random function.

    Prototypes are scaled so that neighbouring classes sit a few noise widths apart whatever
    the shape, so a small model beats chance clearly without the task being trivial.
    """
    rng = np.random.default_rng(seed)
    n = source.train + source.test
    features = int(np.prod(source.shape))
    if task == CLASSIFICATION:
        prototypes = rng.standard_normal((source.classes, features), dtype=np.float32)
        prototypes *= np.float32(3.0 / np.sqrt(features))
        y = rng.integers(0, source.classes, size=n).astype(np.int32)
        x = rng.standard_normal((n, features), dtype=np.float32)
        x += prototypes[y]
    else:
        x = rng.standard_normal((n, features), dtype=np.float32)
        w1, w2 = rng.standard_normal((2, features), dtype=np.float32) / np.float32(np.sqrt(features))
        y = np.sin(2 * (x @ w1)) + 0.5 * (x @ w2) + 0.05 * rng.standard_normal(n, dtype=np.float32)
        y = y.astype(np.float32)
    x = x.reshape(n, *source.shape)
    return _Raw(x[: source.train], y[: source.train], x[source.train :], y[source.train :])


# --- npz and csv files ---------------------------------------------------------------------


PATH_KEY = "data.dataset.path"  # the spec key that errors about a data file name
NPZ_PARTS = ("x_train", "y_train", "x_test", "y_test")


def _npz_labels(path: Path) -> np.ndarray:
    """y_train and y_test as one flat array; a NaN or infinite label is an error."""
    parts = read_npz(path, PATH_KEY, ("y_train", "y_test"))
    for part, values in parts.items():
        require_finite(values, PATH_KEY, functools.partial(_npz_cell, path, part))
    return np.concatenate([parts[k].reshape(-1) for k in ("y_train", "y_test") if k in parts])


def _describe_npz(source: NpzSource, task: str | None) -> SourceFacts:
    path = Path(source.path)
    headers = npz_headers(path, PATH_KEY)
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
    inferred = _infer_task(labels)
    label_shape = headers["y_train"].shape[1:]
    if (task or inferred) == CLASSIFICATION and label_shape not in ((), (1,)):
        raise DataError(
            f"{PATH_KEY}: y_train in {path} has shape (n, *{label_shape}); "
            "classification needs class indices of shape (n,), e.g. the argmax of one-hot labels"
        )
    return SourceFacts(shape, inferred, f"npz:{source.path}", labels=labels)


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


def _load_npz(source: NpzSource, seed: int, task: str) -> _Raw:
    path = Path(source.path)
    found = read_npz(path, PATH_KEY, NPZ_PARTS)
    for part in ("x_train", "x_test"):
        if part in found:
            where = functools.partial(_npz_cell, path, part)
            require_finite(found[part], PATH_KEY, where)
    return _Raw(found["x_train"], found["y_train"], found.get("x_test"), found.get("y_test"))


def _npz_cell(path: Path, part: str, row: int, column: int | None = None) -> str:
    """`x_train[5]`: a row of an array, indexed from 0 as numpy does."""
    return f"{path}: {part}[{row}]"


def _target_index(path: Path, header: list[str], target: str) -> int:
    if target not in header:  # the header's names are the file's contents: counted, not shown
        raise DataError(
            f"data.dataset.target: no column '{target}' in the header row of {path} "
            f"({len(header)} columns); name the target column exactly as the header does"
        )
    return header.index(target)


def _csv_column(path: Path, target: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The header and the target column's (line number, cell), without keeping the features."""
    rows = csv_rows(path, PATH_KEY)
    _, header = next(rows, (0, []))
    if not header:
        raise DataError(f"{PATH_KEY}: {path} is empty; expected a header row and data rows")
    index = _target_index(path, header, target)
    if len(header) < 2:
        raise DataError(f"{PATH_KEY}: {path} has no feature columns besides '{target}'")
    column = []
    for number, row in rows:
        _check_width(path, number, row, header, PATH_KEY)
        column.append((number, row[index]))
    if not column:
        raise DataError(f"{PATH_KEY}: {path} has a header but no data rows")
    return header, column


def _check_width(path: Path, number: int, row: list[str], header: list[str], key: str) -> None:
    if len(row) != len(header):
        raise DataError(f"{key}: {path} line {number} has {len(row)} cells, but the header has {len(header)}")


def _csv_labels(
    path: Path, column: list[tuple[int, str]], position: int, key: str
) -> tuple[np.ndarray, list[str] | None]:
    """Numeric labels (finite), or indices into the sorted text labels and those labels;
    `position` is the label column's number, counted from 1, for messages."""
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
                if not _is_number(cell):
                    raise DataError(f"{key}: {where(row, column)} is not a number") from None
        raise
    require_finite(x, key, where)
    return x


def _describe_csv(source: CsvSource, task: str | None) -> SourceFacts:
    path = Path(source.path)
    header, column = _csv_column(path, source.target)
    labels, names = _csv_labels(path, column, header.index(source.target) + 1, PATH_KEY)
    if names is not None and task == REGRESSION:
        raise DataError(
            f"data.task: regression needs a numeric target, but column '{source.target}' of {path} "
            "holds text; set task: classification or point data.dataset.target at a numeric column"
        )
    inferred = CLASSIFICATION if names is not None else _infer_task(labels)
    return SourceFacts((len(header) - 1,), inferred, f"csv:{source.path}", labels=labels, label_names=names)


def _load_csv(source: CsvSource, seed: int, task: str) -> _Raw:
    path, target = Path(source.path), source.target
    rows = list(csv_rows(path, PATH_KEY))
    header = rows[0][1]
    index = _target_index(path, header, target)
    x, column = _split_csv(path, header, rows[1:], index, PATH_KEY)
    labels, names = _csv_labels(path, column, index + 1, PATH_KEY)
    return _Raw(x, labels, None, None, names)


def _split_csv(
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


# --- one reader per source ----------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """How one kind of source describes itself (cheaply, for `check`) and loads its arrays."""

    describe: Callable[[Any, str | None], SourceFacts]  # (source, requested task)
    load: Callable[[Any, int, str], _Raw]  # (source, seed, task)


READERS: dict[str, Reader] = {
    "keras": Reader(_describe_named, _load_keras),
    "sklearn": Reader(_describe_named, _load_sklearn),
    "npz": Reader(_describe_npz, _load_npz),
    "csv": Reader(_describe_csv, _load_csv),
    "synthetic": Reader(_describe_synthetic, _load_synthetic),
}


def reader(source: str | NpzSource | CsvSource | SyntheticSource) -> Reader:
    """The reader for `data.dataset`: a named set's origin, else the mapping's `type`."""
    if isinstance(source, str):
        return READERS["keras" if source in KERAS_DATASETS else "sklearn"]
    return READERS[source.type]


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
    if all(_is_number(cell) for cell in header):  # no header row: every column is a feature
        header, data = [f"column {i + 1}" for i in range(len(header))], rows
    else:
        data = rows[1:]
    label = next((i for i, name in enumerate(header) if name.lower() in LABEL_COLUMNS), None)
    x, column = _split_csv(path, header, data, label, key)
    if not len(x):
        raise DataError(f"{key}: {path} has a header but no rows of examples")
    if column is None:
        return x.astype(np.float32), None
    if all(_is_number(cell) for _, cell in column):
        return x.astype(np.float32), _csv_labels(path, column, label + 1, key)[0]
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
        require_finite(values, key, functools.partial(_npz_cell, path, name))
    return found[x_key], found.get(y_key)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
