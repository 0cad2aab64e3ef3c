"""`dnnlab mc-predict`: Monte Carlo dropout predictions of a run, with calibration and
uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab.errors import DataError, PredictError
from dnnlab.files.figures import check_plot_path
from dnnlab.files.folders import check_output_folder
from dnnlab.inference.options import DEFAULT_SAMPLE, DEFAULT_SEED
from dnnlab.inference.run_inputs import (
    PredictionSet,
    find_run,
    model_file,
    prediction_set,
    refuse_autoencoder,
)
from dnnlab.rundir.directory import RunDir


@dataclass(frozen=True)
class MCPrediction:
    """What `mc_predict` did: which run and data, how many samples with which seed, the
    scores of each method (None without labels) and the file it wrote (None without `out`)."""

    run: Path
    source: str
    instances: int
    samples: int
    seed: int
    scores: dict[str, dict[str, float]] | None
    written: Path | None
    sample: str = DEFAULT_SAMPLE  # which dropout layers sampled
    temperature: float | None = None  # fitted on the validation split (classification with labels)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        scores = self.scores or {}
        return {
            "run": str(self.run),
            "data": self.source,
            "instances": self.instances,
            "samples": self.samples,
            "seed": self.seed,
            "sample": self.sample,
            "deterministic": scores.get("deterministic"),
            "mc": scores.get("mc"),
            "temperature_scaled": scores.get("temperature_scaled"),
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
    from dnnlab.inference import calibration

    if plot is not None:
        check_plot_path(plot)
    if out is not None:
        check_output_folder(out, "--out")
    run = find_run(run_dir)
    refuse_autoencoder(run, "mc-predict")
    dataset = prediction_set(run, data)
    if plot is not None and (dataset.y is None or dataset.task != "classification"):
        raise PredictError(f"--plot {plot}: a reliability diagram needs class labels (a classification run)")
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab.inference import mc_dropout as mc
    from dnnlab.model.build import load_model

    model = load_model(model_file(run), compile=False)
    result = mc.sample(
        model, dataset.x, samples=samples, batch_size=batch_size, seed=seed, task=dataset.task, sample=sample
    )
    scores = mc.scores(model, dataset.x, dataset.y, result) if dataset.y is not None else None
    temperature, notes = None, []
    if scores is not None and result.task == mc.CLASSIFICATION:
        temperature, notes = _temperature_baseline(run, model, dataset, scores)
    baselines: dict[str, np.ndarray] = {}
    if scores is not None and result.task == mc.CLASSIFICATION:
        # what a reliability diagram needs beside the MC mean: the labels and the baselines
        deterministic = mc.deterministic_outputs(model, dataset.x)
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
        scores,
        written,
        sample,
        temperature,
        plot,
        notes,
    )


def _temperature_baseline(
    run: RunDir, model, dataset: PredictionSet, scores: dict
) -> tuple[float | None, list]:
    """Fit T on the run's validation split; add the scaled deterministic metrics to `scores`."""
    from dnnlab.inference import calibration
    from dnnlab.inference import mc_dropout as mc

    try:
        validation = prediction_set(run, "validation")
    except DataError:
        return None, ["no validation split: the temperature-scaled baseline needs one to fit T"]
    temperature = calibration.fit_temperature(mc.deterministic_outputs(model, validation.x), validation.y)
    scaled = calibration.temperature_scale(mc.deterministic_outputs(model, dataset.x), temperature)
    scores["temperature_scaled"] = calibration.classification_metrics(scaled, dataset.y)
    notes = []
    if dataset.source == "validation":
        notes.append("T was fitted on the validation split it is evaluated on: its figures are optimistic")
    return temperature, notes
