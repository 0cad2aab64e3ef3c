"""Datasets: describe a spec's data without loading it, and load it split and scaled.

One reader per source kind (named sets, npz, csv, synthetic) describes itself cheaply (for
`check`) and loads its arrays; filters, hold-out, validation split and scaling are applied here
the same way for every source. A table (penguins, a CSV with text columns or chosen columns) is
split by row position the same way before its encoding is fitted on the training rows (see
table_source); its width depends on the training rows' categories, so describing it reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dnnlab.data import holdout
from dnnlab.data.csv_source import describe_csv, load_csv
from dnnlab.data.named_sets import describe_named, load_keras, load_sklearn
from dnnlab.data.npz_source import describe_npz, load_npz
from dnnlab.data.source import (
    AUTOENCODER,
    CLASSIFICATION,
    REGRESSION,
    UNLABELED,
    RawArrays,
    SourceFacts,
    check_class_labels,
    check_two_classes,
)
from dnnlab.data.synthetic import describe_synthetic, load_synthetic
from dnnlab.errors import DataError
from dnnlab.spec.data import KERAS_DATASETS, CsvSource, DataSpec, NpzSource, PenguinsSource, SyntheticSource

PARQUET_SUFFIXES = (".parquet", ".pq")  # table_files reads them (pyarrow); only as a table

if TYPE_CHECKING:
    from dnnlab.data.table_source import Table
    from dnnlab.data.tables import TablePreprocessing


@dataclass(frozen=True)
class DatasetInfo:
    """What the model builder needs to know about a dataset."""

    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None
    name: str
    table: TablePreprocessing | None = None  # a table's encoding, fitted on its training rows


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

    @classmethod
    def fit_columns(cls, method: str, x_train: np.ndarray, marked: np.ndarray) -> Scaling:
        """Per-column statistics fitted on the `marked` columns of a 2-D matrix only; the others
        keep offset 0 and scale 1 (a table's one-hot and 0/1 columns, see tables.py)."""
        if method == "none":
            return cls("none")
        offset = np.zeros(x_train.shape[1], dtype=np.float32)
        scale = np.ones(x_train.shape[1], dtype=np.float32)
        if marked.any():
            fitted = cls.fit(method, x_train[:, marked])
            offset[marked], scale[marked] = fitted.offset, fitted.scale
        return cls(method, offset, scale)

    def apply(self, x: np.ndarray, copy: bool = True) -> np.ndarray:
        """The transformed copy of `x`, float32; with `copy=False`, `x` itself when it is float32
        (a matrix made for this call, which a large table need not hold twice)."""
        out = np.array(x, dtype=np.float32, copy=True) if copy else np.asarray(x, dtype=np.float32)
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
    table: TablePreprocessing | None = None  # a table's encoding, applied before the scaling
    x_unlabeled: np.ndarray | None = None  # data.unlabeled: scaled inputs for pretraining only

    def preprocessing(self) -> dict[str, Any]:
        """What preprocessing.json records, so prediction applies the same transform."""
        record = {
            "scaling": self.scaling.to_dict(),
            "input_shape": list(self.info.input_shape),
            "task": self.info.task,
            "num_classes": self.info.num_classes,
            "class_labels": self.class_labels,
            "dataset": self.info.name,
        }
        if self.table is not None:
            record["table"] = self.table.to_json()
        return record


def describe(spec: DataSpec) -> DatasetInfo:
    """Shape, task and class count without loading the examples (offline, no TensorFlow).

    Named and synthetic sets come from tables and fields; an npz file gives its array headers
    and labels, a csv file its header and label column. Also checks `task` and `classes`. A
    table is read, split and its encoding fitted (see `describe_table`).
    """
    if _is_table(spec.dataset):
        return describe_table(spec)
    if spec.task == AUTOENCODER:  # the labels are not read: only the inputs' shape matters
        found = reader(spec.dataset).describe(spec.dataset, None)
        return DatasetInfo(found.shape, AUTOENCODER, None, found.name)
    found = reader(spec.dataset).describe(spec.dataset, spec.task)
    if found.table:
        return describe_table(spec)
    if found.task == UNLABELED:
        raise DataError(
            f"data.dataset: {found.name} has no labels (csv target: null, or an npz without y_train); "
            "only data.task: autoencoder trains on such inputs (a classifier or regressor needs labels, "
            "with training.pretrain too: its fine-tune trains on them)"
        )
    task = spec.task or found.task
    if task == REGRESSION:
        if spec.classes is not None:
            raise DataError("data.classes: only applies to classification, and this task is regression")
        return DatasetInfo(found.shape, REGRESSION, None, found.name)
    labels, names, known_classes = found.labels, found.label_names, found.num_classes
    if labels is not None and names is None:
        check_class_labels(labels, found.name)
    if labels is not None and spec.classes is None:
        check_two_classes(labels, found.name)
    present = list(range(known_classes)) if known_classes else sorted(int(v) for v in np.unique(labels))
    num_classes = known_classes or (len(names) if names else max(present) + 1)
    if spec.classes is not None:
        _check_classes(spec.classes, present, found.name, names)
        num_classes = len(spec.classes)
    return DatasetInfo(found.shape, CLASSIFICATION, num_classes, found.name)


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


def load(spec: DataSpec) -> Dataset:
    """Load, filter, split and scale the data as the spec says; deterministic for `split_seed`.

    `split_seed`, not the run's `seed`, draws the hold-out and synthetic data, so runs that differ
    only in `seed` see the same rows and scaling statistics. Sources without a test split hold
    out `data.test` (stratified for classification) after a seeded shuffle. `classes` keeps and
    relabels those classes 0..k-1 in the given order; the validation rows are the first
    `validation` training rows (or that fraction); `train_size` keeps the first N training rows
    left after that; scaling is fitted on those rows only.
    """
    if _is_table(spec.dataset):  # a resolved spec's table: its columns are listed
        return _load_table(spec)
    info = describe(spec)
    if info.table is not None:
        return _load_table(spec)
    # An autoencoder holds out the rows a classifier of the same data holds out, so that a
    # classifier reusing its encoder was never pretrained on its validation or test rows.
    label_task = _label_task(spec, info)
    raw = reader(spec.dataset).load(spec.dataset, spec.split_seed, label_task)
    if raw.x_test is None:
        raw.x_train, raw.x_test, raw.y_train, raw.y_test = _hold_out(
            raw.x_train, raw.y_train, spec.test, spec.split_seed, label_task == CLASSIFICATION
        )
    y_train = _labels(raw.y_train, label_task)
    y_test = _labels(raw.y_test, label_task)
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
        _check_train_size(spec, len(x_train))
        if spec.unlabeled == "rest":
            return _with_unlabeled(spec, info, x_train, y_train, x_val, y_val, x_test, y_test, class_labels)
        x_train, y_train = x_train[: spec.train_size], y_train[: spec.train_size]

    scaling = Scaling.fit(spec.scaling, x_train)
    return _finished(info, scaling, x_train, y_train, x_val, y_val, x_test, y_test, class_labels)


def _with_unlabeled(
    spec: DataSpec, info: DatasetInfo, x_all, y_all, x_val, y_val, x_test, y_test, class_labels
):
    """`data.unlabeled: rest`: the first `train_size` rows keep their labels, the rest are inputs
    for pretraining only (an autoencoder trains on all of them); scaling is fitted on all of them,
    so a classifier and the autoencoder it reuses see the same transform."""
    if spec.train_size >= len(x_all):
        raise DataError(
            f"data.unlabeled: rest is empty: data.train_size {spec.train_size} keeps all "
            f"{len(x_all)} training rows; use a smaller train_size"
        )
    scaling = Scaling.fit(spec.scaling, x_all)
    if info.task == AUTOENCODER:
        return _finished(info, scaling, x_all, y_all, x_val, y_val, x_test, y_test, class_labels)
    n = spec.train_size
    unlabeled = scaling.apply(x_all[n:])
    return _finished(
        info, scaling, x_all[:n], y_all[:n], x_val, y_val, x_test, y_test, class_labels, unlabeled
    )


def _finished(
    info: DatasetInfo,
    scaling: Scaling,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    class_labels: list | None,
    x_unlabeled: np.ndarray | None = None,
) -> Dataset:
    """The scaled dataset; an autoencoder's targets are its scaled inputs."""
    info = DatasetInfo(tuple(x_train.shape[1:]), info.task, info.num_classes, info.name)
    if info.task == AUTOENCODER:
        x_train = scaling.apply(x_train)
        x_val = None if x_val is None else scaling.apply(x_val)
        x_test = None if x_test is None or not len(x_test) else scaling.apply(x_test)
        return Dataset(info, x_train, x_train, x_val, x_val, x_test, x_test, scaling, None)
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
        x_unlabeled=x_unlabeled,
    )


def _check_train_size(spec: DataSpec, n_train: int) -> None:
    if spec.train_size is not None and spec.train_size > n_train:
        raise DataError(
            f"data.train_size: {spec.train_size} is more than the {n_train} training rows "
            f"left{' after data.classes' if spec.classes else ''} and data.validation; "
            f"allowed: 1..{n_train}"
        )


def check_values(spec: DataSpec) -> None:
    """Read a file source's values once and drop them, so that a NaN fails before a sweep starts
    trials that would each fail on it; named and synthetic sets need no such check."""
    source = spec.dataset
    if isinstance(source, (NpzSource, CsvSource)):
        info = describe(spec)
        if info.table is not None:
            _load_table(spec)  # a cell a table's encoding refuses (a third value of a binary column)
        else:
            reader(source).load(source, spec.split_seed, _label_task(spec, info))


def _label_task(spec: DataSpec, info: DatasetInfo) -> str:
    """The task a source's labels are read for: an autoencoder's are the source's own."""
    if info.task == AUTOENCODER:
        return reader(spec.dataset).describe(spec.dataset, None).task
    return info.task


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


# --- tables -------------------------------------------------------------------------------


def _is_table(source: Any) -> bool:
    """A table that the spec alone tells (penguins, a CSV with chosen columns, a Parquet file);
    a CSV whose cells are text is one too, which only its reader can tell."""
    if isinstance(source, PenguinsSource):
        return True
    parquet = isinstance(source, CsvSource) and source.path.lower().endswith(PARQUET_SUFFIXES)
    return isinstance(source, CsvSource) and (source.is_table() or parquet)


def table_rows(spec: DataSpec) -> tuple[Table, dict[str, np.ndarray]]:
    """The table and the positions of its training, validation and test rows, drawn as for
    every other source: the seeded hold-out of `data.test` (stratified on the target for
    classification), the first `validation` training rows, the first `train_size` of the rest."""
    from dnnlab.data import table_source

    if spec.classes is not None:
        raise DataError(
            "data.classes: not available for a table; leave the rows of the other classes out of the file"
        )
    table = table_source.read_source(spec.dataset, spec.task)
    classification = table.target.task == CLASSIFICATION
    train, test, _, _ = _hold_out(
        np.arange(len(table.frame)), table.strata(), spec.test, spec.split_seed, classification
    )
    n_val = _validation_rows(spec.validation, len(train), False)
    validation, train = train[:n_val], train[n_val:]
    _check_train_size(spec, len(train))
    if spec.train_size is not None:
        train = train[: spec.train_size]
    return table, {"train": train, "validation": validation, "test": test}


def describe_table(spec: DataSpec) -> DatasetInfo:
    """A table's facts: its rows read and split, the encoding fitted on the training rows (the
    input width counts their categories), and the labels of the validation and test rows
    checked against the training rows' classes."""
    table, rows = table_rows(spec)
    encoding = table.fit(rows["train"])
    for part in ("validation", "test"):
        encoding.encode_target(table.rows(rows[part]))
    target = encoding.target
    num_classes = len(target.classes) if target.classes is not None else None
    return DatasetInfo((encoding.width,), target.task, num_classes, table.name, encoding)


def _load_table(spec: DataSpec) -> Dataset:
    """A table's Dataset: encoded, then scaled (numeric columns only) with the statistics of the
    training rows."""
    table, rows = table_rows(spec)
    encoding = table.fit(rows["train"])
    x = {part: encoding.transform(table.rows(positions)) for part, positions in rows.items()}
    y = {part: encoding.encode_target(table.rows(positions)) for part, positions in rows.items()}
    scaling = Scaling.fit_columns(spec.scaling, x["train"], encoding.scaled_features())
    x = {part: scaling.apply(matrix, copy=False) for part, matrix in x.items()}
    target = encoding.target
    classes = target.classes
    info = DatasetInfo(
        (encoding.width,), target.task, None if classes is None else len(classes), table.name, encoding
    )
    return Dataset(
        info=info,
        x_train=x["train"],
        y_train=y["train"],
        x_val=x["validation"] if len(rows["validation"]) else None,
        y_val=y["validation"] if len(rows["validation"]) else None,
        x_test=x["test"],
        y_test=y["test"],
        scaling=scaling,
        class_labels=None if classes is None else [_class_label(c) for c in classes],
        table=encoding,
    )


def _class_label(value: Any) -> Any:
    """A class as predict names it: 3 rather than 3.0 for whole numbers, else as the file has it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --- one reader per source ----------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """How one kind of source describes itself (cheaply, for `check`) and loads its arrays."""

    describe: Callable[[Any, str | None], SourceFacts]  # (source, requested task)
    load: Callable[[Any, int, str], RawArrays]  # (source, seed, task)


READERS: dict[str, Reader] = {
    "keras": Reader(describe_named, load_keras),
    "sklearn": Reader(describe_named, load_sklearn),
    "npz": Reader(describe_npz, load_npz),
    "csv": Reader(describe_csv, load_csv),
    "synthetic": Reader(describe_synthetic, load_synthetic),
}


def reader(source: str | NpzSource | CsvSource | SyntheticSource) -> Reader:
    """The reader for `data.dataset`: a named set's origin, else the mapping's `type`."""
    if isinstance(source, str):
        return READERS["keras" if source in KERAS_DATASETS else "sklearn"]
    return READERS[source.type]
