"""A trained run's inputs: its model file, preprocessing and data splits, as prediction
commands need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dnnlab.data import datasets
from dnnlab.data.input_files import load_array_file
from dnnlab.errors import DataError, PredictError, RunDirError
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.discovery import latest_completed
from dnnlab.spec.loading import read_run_spec

if TYPE_CHECKING:
    from dnnlab.data.tables import TablePreprocessing

SPLITS = ("test", "validation")


@dataclass(frozen=True)
class PredictionSet:
    x: np.ndarray  # scaled as in training
    y: np.ndarray | None  # labels as the model knows them (filtered classes relabelled)
    source: str  # "test", "validation" or the file's path
    task: str | None  # as preprocessing.json records it


def find_run(run_dir: Path | None, runs_root: Path = Path("runs")) -> RunDir:
    """The given run directory, or the most recent completed run under `runs_root`."""
    if run_dir is not None:
        return RunDir.open(run_dir)
    latest = latest_completed(runs_root)
    if latest is None:
        raise RunDirError(f"{runs_root}: no completed run found; train one or pass RUN_DIR")
    return RunDir(latest)


def recorded_task(run: RunDir) -> str | None:
    """The task preprocessing.json records (classification, regression, autoencoder), None when
    it records none; a damaged file is a RunDirError."""
    preprocessing = run.read_json(run.preprocessing) if run.preprocessing.is_file() else {}
    task = preprocessing.get("task") if isinstance(preprocessing, dict) else None
    return task if isinstance(task, str) else None


def refuse_autoencoder(run: RunDir, command: str) -> None:
    """An autoencoder's output is a reconstruction, not classes or a target: `command` needs those."""
    if recorded_task(run) == "autoencoder":
        raise PredictError(
            f"{run.path}: an autoencoder run (data.task: autoencoder) reconstructs its input; {command} "
            "needs a classifier or regressor: reuse its encoder with model.transfer.run"
        )


def model_file(run: RunDir) -> Path:
    """The final model, or the last checkpoint of a run that has not finished."""
    for candidate in (run.model_file, run.last_checkpoint):
        if candidate.exists():
            return candidate
    raise RunDirError(f"{run.path}: no model.keras or checkpoint to predict with")


def prediction_set(run: RunDir, which: str, labelled: bool = True) -> PredictionSet:
    """`test` or `validation` split of the run's dataset, or the examples of a .npz/.csv file
    (for a run on a table, a raw table with its columns). `labelled=False`: a file's labels are
    not read (predict needs none, and a table's rows to predict may miss them)."""
    if which in SPLITS:
        return split_set(run, which)
    preprocessing = run.read_json(run.preprocessing)
    path = Path(which)
    encoding = table_encoding(run, preprocessing)
    if encoding is not None:
        return _table_file(encoding, preprocessing, path, labelled)
    x, y = load_array_file(path)
    expected = tuple(preprocessing["input_shape"])
    x = _reshape(x, expected, path)
    scaling = datasets.Scaling.from_dict(preprocessing["scaling"])
    labels = _known_labels(y, preprocessing, path)
    return PredictionSet(scaling.apply(x), labels, str(path), preprocessing.get("task"))


def table_encoding(run: RunDir, preprocessing: dict[str, Any] | None = None) -> TablePreprocessing | None:
    """The run's table encoding (preprocessing.json's `table`), checked; None for other data."""
    preprocessing = run.read_json(run.preprocessing) if preprocessing is None else preprocessing
    if not isinstance(preprocessing, dict) or "table" not in preprocessing:
        return None
    from dnnlab.data.tables import TablePreprocessing

    return TablePreprocessing.from_json(preprocessing["table"], where=str(run.preprocessing))


def _table_file(
    encoding: TablePreprocessing, preprocessing: dict[str, Any], path: Path, labelled: bool
) -> PredictionSet:
    """A raw table encoded as in training: its feature columns by name (others ignored, a missing
    one refused), then the run's scaling; labels when it has the target column."""
    from dnnlab.data.table_files import read_table

    frame = read_table(path, "--data", encoding.text_columns())
    x = datasets.Scaling.from_dict(preprocessing["scaling"]).apply(encoding.transform(frame), copy=False)
    target = encoding.target
    y = None
    if labelled and target is not None and target.name in frame.columns:
        y = encoding.encode_target(frame)
    return PredictionSet(x, y, str(path), preprocessing.get("task"))


def split_set(run: RunDir, which: str) -> PredictionSet:
    """The run's `test`, `validation` or `train` split, reloaded as its spec says (scaled)."""
    preprocessing = run.read_json(run.preprocessing)
    spec, _ = read_run_spec(run.config)
    dataset = datasets.load(spec.data)
    x, y = {
        "test": (dataset.x_test, dataset.y_test),
        "validation": (dataset.x_val, dataset.y_val),
        "train": (dataset.x_train, dataset.y_train),
    }[which]
    if x is None or len(x) == 0:
        other = "validation" if which == "test" else "test"
        raise DataError(
            f"--data {which}: the run's dataset has no {which} split; use --data {other} or a FILE"
        )
    return PredictionSet(x, y, which, preprocessing.get("task"))


def _reshape(x: np.ndarray, expected: tuple[int, ...], path: Path) -> np.ndarray:
    """Rows of a CSV are flat; an image model takes them back to its input shape."""
    if tuple(x.shape[1:]) == expected:
        return x
    if int(np.prod(x.shape[1:])) == int(np.prod(expected)):
        return x.reshape((len(x), *expected))
    raise DataError(f"--data {path}: examples of shape {tuple(x.shape[1:])}; the model expects {expected}")


def _known_labels(y: Any, preprocessing: dict[str, Any], path: Path) -> np.ndarray | None:
    """Map original labels to the model's classes when the run kept a subset (`data.classes`)."""
    if y is None or preprocessing.get("task") != "classification":
        return y
    labels = preprocessing.get("class_labels") or list(range(preprocessing.get("num_classes") or 0))
    if not labels:  # a preprocessing.json without the class count: labels taken as they are
        return np.asarray(y).astype("int64").reshape(-1)
    index = {_label_key(label): i for i, label in enumerate(labels)}
    flat = [_label_key(v) for v in np.asarray(y).reshape(-1)]
    unknown = [row for row, value in enumerate(flat) if value not in index]
    if unknown:  # the file's values are not shown: it may be anything
        raise DataError(
            f"--data {path}: {len(unknown)} label(s), the first in row {unknown[0]} (counted from 0), "
            f"are not among the run's classes ({', '.join(map(str, labels))})"
        )
    return np.array([index[v] for v in flat], dtype="int64")


def _label_key(value: Any) -> str:
    """5, 5.0 and '5' name the same class."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)
