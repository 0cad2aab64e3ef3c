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

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import keras_datasets, runtime
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
    """Shuffle with the seed and hold out a test fraction; stratified when it can be."""
    with runtime.optional_imports_skipped(runtime.OPTIONAL_FOR_SKLEARN):
        from sklearn.model_selection import train_test_split

    if len(x) < 2:
        raise DataError(f"data.test: {len(x)} row(s) cannot be split into training and test rows")
    try:
        return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y if stratify else None)
    except ValueError:
        if not stratify:
            raise DataError(f"data.test: {fraction} of {len(x)} rows leaves an empty split") from None
        # Too few examples of some class to stratify: a plain seeded split still works.
        return train_test_split(x, y, test_size=fraction, random_state=seed)


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
    with runtime.optional_imports_skipped(runtime.OPTIONAL_FOR_SKLEARN):
        import sklearn.datasets

    x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    return _Raw(x, y, None, None)


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


def _existing(path: str | Path, key: str) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "is a directory, expected a file" if path.is_dir() else "no such file"
        raise DataError(f"{key}: {path}: {what}")
    return path


def _npz_headers(path: Path) -> dict[str, tuple[int, ...]]:
    """Array name -> one example's shape, read from the .npy headers inside the zip only."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    if version[0] == 1:
                        shape = np.lib.format.read_array_header_1_0(stream)[0]
                    else:
                        shape = np.lib.format.read_array_header_2_0(stream)[0]
                shapes[member[: -len(".npy")]] = tuple(shape[1:])
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"data.dataset.path: {path} is not a readable .npz file ({exc})") from None
    return shapes


def _open_npz(path: Path, key: str) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"{key}: {path} is not a readable .npz file ({exc})") from None


def _npz_labels(path: Path) -> np.ndarray:
    with _open_npz(path, "data.dataset.path") as arrays:
        parts = [arrays[k].reshape(-1) for k in ("y_train", "y_test") if k in arrays.files]
    return np.concatenate(parts)


def _describe_npz(source: NpzSource, task: str | None) -> SourceFacts:
    path = _existing(source.path, "data.dataset.path")
    headers = _npz_headers(path)
    if "x_train" not in headers or "y_train" not in headers:
        raise DataError(
            f"data.dataset.path: {path} needs arrays x_train and y_train; "
            f"it has: {', '.join(headers) or 'none'}"
        )
    shape = headers["x_train"]
    if not shape:
        raise DataError(
            f"data.dataset.path: x_train in {path} is 1-D; expected one row per example, "
            "shape (n, features...)"
        )
    labels = _npz_labels(path)
    inferred = _infer_task(labels)
    if (task or inferred) == CLASSIFICATION and headers["y_train"] not in ((), (1,)):
        raise DataError(
            f"data.dataset.path: y_train in {path} has shape (n, *{headers['y_train']}); "
            "classification needs class indices of shape (n,), e.g. the argmax of one-hot labels"
        )
    return SourceFacts(shape, inferred, f"npz:{source.path}", labels=labels)


def _load_npz(source: NpzSource, seed: int, task: str) -> _Raw:
    path, key = Path(source.path), "data.dataset.path"
    with _open_npz(path, key) as arrays:
        found = {k: arrays[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in arrays.files}
    if ("x_test" in found) != ("y_test" in found):
        raise DataError(f"{key}: {path} has only one of x_test and y_test; give both or neither")
    for part in ("train", "test"):
        if f"x_{part}" in found and len(found[f"x_{part}"]) != len(found[f"y_{part}"]):
            raise DataError(
                f"{key}: {path}: x_{part} has {len(found[f'x_{part}'])} rows but y_{part} has "
                f"{len(found[f'y_{part}'])}; they must match"
            )
    return _Raw(found["x_train"], found["y_train"], found.get("x_test"), found.get("y_test"))


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty row, header included."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if row and any(cell.strip() for cell in row):
                    yield number, [cell.strip() for cell in row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data.dataset.path: {path} is not a readable CSV file ({exc})") from None


def _target_index(path: Path, header: list[str], target: str) -> int:
    if target not in header:
        raise DataError(f"data.dataset.target: no column '{target}' in {path}; columns: {', '.join(header)}")
    return header.index(target)


def _csv_column(path: Path, target: str) -> tuple[list[str], list[str]]:
    """The header and the target column's cells, without keeping the features in memory."""
    rows = _csv_rows(path)
    _, header = next(rows, (0, []))
    if not header:
        raise DataError(f"data.dataset.path: {path} is empty; expected a header row and data rows")
    index = _target_index(path, header, target)
    if len(header) < 2:
        raise DataError(f"data.dataset.path: {path} has no feature columns besides '{target}'")
    column = []
    for number, row in rows:
        _check_width(path, number, row, header)
        column.append(row[index])
    if not column:
        raise DataError(f"data.dataset.path: {path} has a header but no data rows")
    return header, column


def _check_width(path: Path, number: int, row: list[str], header: list[str]) -> None:
    if len(row) != len(header):
        raise DataError(
            f"data.dataset.path: {path} line {number} has {len(row)} cells, but the header has {len(header)}"
        )


def _csv_labels(column: list[str]) -> tuple[np.ndarray, list[str] | None]:
    """Numeric labels, or indices into the sorted text labels and those labels."""
    try:
        return np.array([float(cell) for cell in column]), None
    except ValueError:
        names = sorted(set(column))
        lookup = {label: i for i, label in enumerate(names)}
        return np.array([lookup[cell] for cell in column]), names


def _to_floats(path: Path, header: list[str], rows: list[tuple[int, list[str]]], key: str) -> np.ndarray:
    try:
        return np.array([cells for _, cells in rows], dtype=np.float64).reshape(len(rows), len(header))
    except ValueError:
        for number, cells in rows:
            for name, cell in zip(header, cells):
                try:
                    float(cell)
                except ValueError:
                    raise DataError(
                        f"{key}: {path} line {number}, column '{name}': {cell!r} is not a number"
                    ) from None
        raise


def _describe_csv(source: CsvSource, task: str | None) -> SourceFacts:
    path = _existing(source.path, "data.dataset.path")
    header, column = _csv_column(path, source.target)
    labels, names = _csv_labels(column)
    if names is not None and task == REGRESSION:
        raise DataError(
            f"data.task: regression needs a numeric target, but column '{source.target}' "
            f"of {path} holds text such as {names[0]!r}"
        )
    inferred = CLASSIFICATION if names is not None else _infer_task(labels)
    return SourceFacts((len(header) - 1,), inferred, f"csv:{source.path}", labels=labels, label_names=names)


def _load_csv(source: CsvSource, seed: int, task: str) -> _Raw:
    path, target = Path(source.path), source.target
    rows = list(_csv_rows(path))
    header = rows[0][1]
    index = _target_index(path, header, target)
    for number, cells in rows[1:]:
        _check_width(path, number, cells, header)
    y, names = _csv_labels([cells[index] for _, cells in rows[1:]])
    feature_names = header[:index] + header[index + 1 :]
    features = [(n, cells[:index] + cells[index + 1 :]) for n, cells in rows[1:]]
    x = _to_floats(path, feature_names, features, "data.dataset.path")
    return _Raw(x, y, None, None, names)


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
    is a feature except one named y, target or label. The arrays come back unscaled.
    """
    path = Path(path)
    key = "--data"
    if path.suffix.lower() not in (".npz", ".csv"):
        received = path.suffix or "no suffix"
        raise DataError(f"{key}: {path}: expected a .npz or .csv file, received '{received}'")
    _existing(path, key)
    if path.suffix.lower() == ".npz":
        with _open_npz(path, key) as arrays:
            x_key = next((k for k in ("x", "x_test") if k in arrays.files), None)
            if x_key is None:
                found = ", ".join(arrays.files) or "none"
                raise DataError(f"{key}: {path} needs an array named x; it has: {found}")
            y_key = {"x": "y", "x_test": "y_test"}[x_key]
            return arrays[x_key], arrays[y_key] if y_key in arrays.files else None
    rows = list(_csv_rows(path))
    if not rows:
        raise DataError(f"{key}: {path} is empty")
    header = rows[0][1]
    if all(_is_number(cell) for cell in header):  # no header row: every column is a feature
        header, data = [f"column {i + 1}" for i in range(len(header))], rows
    else:
        data = rows[1:]
    for number, cells in data:
        _check_width(path, number, cells, header)
    label = next((i for i, name in enumerate(header) if name.lower() in LABEL_COLUMNS), None)
    if label is None:
        return _to_floats(path, header, data, key).astype(np.float32), None
    features = [(n, cells[:label] + cells[label + 1 :]) for n, cells in data]
    x = _to_floats(path, header[:label] + header[label + 1 :], features, key).astype(np.float32)
    column = [cells[label] for _, cells in data]
    y = np.array([float(c) for c in column]) if all(_is_number(c) for c in column) else np.array(column)
    return x, y


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
