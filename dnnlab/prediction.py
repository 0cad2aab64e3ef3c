"""Prediction from a run directory: its model, its preprocessing, and the data to predict on.

Everything comes from the run directory's files, so a prediction applies exactly the scaling
the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import data
from dnnlab.errors import DataError, PredictError, RunDirError
from dnnlab.runs import RunDir, check_output_folder, latest_completed
from dnnlab.spec import read_run_spec

SPLITS = ("test", "validation")
DEFAULT_SEED = 0  # the same masks on every call unless asked otherwise: reruns give the same file
DEFAULT_SAMPLE = "all"  # dnnlab.mc.DEFAULT_SAMPLE: every dropout layer samples


@dataclass(frozen=True)
class PredictionSet:
    x: np.ndarray  # scaled as in training
    y: np.ndarray | None  # labels as the model knows them (filtered classes relabelled)
    source: str  # "test", "validation" or the file's path
    task: str | None  # as preprocessing.json records it


@dataclass(frozen=True)
class MCPrediction:
    """What `mc_predict` did: which run and data, how many samples with which seed, the
    calibration report (None without labels) and the file it wrote (None without `out`)."""

    run: Path
    source: str
    instances: int
    samples: int
    seed: int
    report: dict[str, dict[str, float]] | None
    written: Path | None
    sample: str = DEFAULT_SAMPLE  # which dropout layers sampled
    temperature: float | None = None  # fitted on the validation split (classification with labels)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        report = self.report or {}
        return {
            "run": str(self.run),
            "data": self.source,
            "instances": self.instances,
            "samples": self.samples,
            "seed": self.seed,
            "sample": self.sample,
            "deterministic": report.get("deterministic"),
            "mc": report.get("mc"),
            "temperature_scaled": report.get("temperature_scaled"),
            "temperature": self.temperature,
        }


def mc_predict(
    run_dir: Path | None,
    samples: int,
    data: str = "test",
    batch_size: int | None = None,
    seed: int = DEFAULT_SEED,
    out: Path | None = None,
    sample: str = DEFAULT_SAMPLE,
    plot: Path | None = None,
) -> MCPrediction:
    """Monte Carlo dropout predictions of a run's model on `data` ("test", "validation" or a
    .npz/.csv file), compared with one deterministic pass where labels exist, and for
    classification with that pass temperature-scaled (T fitted on the validation split); with
    `out`, the per-instance results are written to that .npz or .csv file, with `plot` the
    reliability diagram of each method. `sample` chooses which dropout layers sample."""
    from dnnlab import calibration

    if plot is not None:
        calibration.check_plot_path(plot)
    if out is not None:
        check_output_folder(out, "--out")
    run = find_run(run_dir)
    dataset = prediction_set(run, data)
    if plot is not None and (dataset.y is None or dataset.task != "classification"):
        raise PredictError(f"--plot {plot}: a reliability diagram needs class labels (a classification run)")
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab import mc
    from dnnlab.build import load_model

    model = load_model(model_file(run), compile=False)
    result = mc.predict(
        model, dataset.x, samples=samples, batch_size=batch_size, seed=seed, task=dataset.task, sample=sample
    )
    report = mc.summary(model, dataset.x, dataset.y, result) if dataset.y is not None else None
    temperature, notes = None, []
    if report is not None and result.task == mc.CLASSIFICATION:
        temperature, notes = _temperature_baseline(run, model, dataset, report)
    baselines: dict[str, np.ndarray] = {}
    if report is not None and result.task == mc.CLASSIFICATION:
        # what a reliability diagram needs beside the MC mean: the labels and the baselines
        deterministic = mc.deterministic_predict(model, dataset.x)
        baselines = {"labels": np.asarray(dataset.y).reshape(-1), "deterministic": deterministic}
        if temperature is not None:
            baselines["temperature_scaled"] = calibration.temperature_scale(deterministic, temperature)
            baselines["temperature"] = np.float64(temperature)
    written = mc.save(result, out, baselines) if out is not None else None
    if plot is not None:
        curves = calibration.reliability_curves(
            {**result.arrays(), **baselines}, f" ({samples} samples, {sample})"
        )
        calibration.plot_reliability(curves, dataset.y, plot, f"{run.path.name}: {dataset.source}")
    return MCPrediction(
        run.path,
        dataset.source,
        len(dataset.x),
        samples,
        result.seed,
        report,
        written,
        sample,
        temperature,
        plot,
        notes,
    )


def _temperature_baseline(
    run: RunDir, model, dataset: PredictionSet, report: dict
) -> tuple[float | None, list]:
    """Fit T on the run's validation split; add the scaled deterministic metrics to `report`."""
    from dnnlab import calibration, mc

    try:
        validation = prediction_set(run, "validation")
    except DataError:
        return None, ["no validation split: the temperature-scaled baseline needs one to fit T"]
    temperature = calibration.fit_temperature(mc.deterministic_predict(model, validation.x), validation.y)
    scaled = calibration.temperature_scale(mc.deterministic_predict(model, dataset.x), temperature)
    report["temperature_scaled"] = mc.classification_metrics(scaled, dataset.y)
    notes = []
    if dataset.source == "validation":
        notes.append("T was fitted on the validation split it is evaluated on: its figures are optimistic")
    return temperature, notes


def find_run(run_dir: Path | None, runs_root: Path = Path("runs")) -> RunDir:
    """The given run directory, or the most recent completed run under `runs_root`."""
    if run_dir is not None:
        return RunDir.open(run_dir)
    latest = latest_completed(runs_root)
    if latest is None:
        raise RunDirError(f"{runs_root}: no completed run found; train one or pass RUN_DIR")
    return RunDir(latest)


def model_file(run: RunDir) -> Path:
    """The final model, or the last checkpoint of a run that has not finished."""
    for candidate in (run.model_file, run.last_checkpoint):
        if candidate.exists():
            return candidate
    raise RunDirError(f"{run.path}: no model.keras or checkpoint to predict with")


def prediction_set(run: RunDir, which: str) -> PredictionSet:
    """`test` or `validation` split of the run's dataset, or the examples of a .npz/.csv file."""
    if which in SPLITS:
        return split_set(run, which)
    preprocessing = run.read_json(run.preprocessing)
    path = Path(which)
    x, y = data.load_array_file(path)
    expected = tuple(preprocessing["input_shape"])
    x = _reshape(x, expected, path)
    scaling = data.Scaling.from_dict(preprocessing["scaling"])
    labels = _known_labels(y, preprocessing, path)
    return PredictionSet(scaling.apply(x), labels, str(path), preprocessing.get("task"))


def split_set(run: RunDir, which: str) -> PredictionSet:
    """The run's `test`, `validation` or `train` split, reloaded as its spec says (scaled)."""
    preprocessing = run.read_json(run.preprocessing)
    spec, _ = read_run_spec(run.config)
    dataset = data.load(spec.data)
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
