"""`dnnlab evaluate`: the loss and metrics of a run's checkpoint on a split or a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnlab.errors import DataError, RunDirError
from dnnlab.inference.options import CHECKPOINTS, DEFAULT_CHECKPOINT
from dnnlab.inference.run_inputs import find_run, model_file, prediction_set, table_encoding
from dnnlab.rundir.directory import RunDir
from dnnlab.spec.loading import read_run_spec


@dataclass(frozen=True)
class Evaluation:
    run: Path
    source: str
    checkpoint: str  # final, best or last
    model: Path  # the file evaluated
    instances: int
    scores: dict[str, float]  # loss first, then the compiled metrics

    def to_json(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "data": self.source,
            "checkpoint": self.checkpoint,
            "model": str(self.model),
            "instances": self.instances,
            **self.scores,
        }


def checkpoint_file(run: RunDir, checkpoint: str) -> Path:
    """final: model.keras (the last checkpoint of an unfinished run); best / last: checkpoints/."""
    if checkpoint == "final":
        return model_file(run)
    path = {"best": run.best_checkpoint, "last": run.last_checkpoint}.get(checkpoint)
    if path is None:
        raise RunDirError(f"--checkpoint: expected one of {', '.join(CHECKPOINTS)}; received {checkpoint!r}")
    if not path.exists():
        raise RunDirError(f"{run.path}: no {path.relative_to(run.path)} to evaluate")
    return path


def evaluate(run_dir: Path, data: str = "test", checkpoint: str = DEFAULT_CHECKPOINT) -> Evaluation:
    """Loss and metrics of the run's model (`checkpoint`) on the test or validation split or on a
    labelled .npz/.csv file, scaled as in training."""
    run = find_run(run_dir)
    path = checkpoint_file(run, checkpoint)
    dataset = prediction_set(run, data)
    if dataset.y is None:
        table = table_encoding(run)
        where = (
            "y, target or label" if table is None or table.target is None else f"column {table.target.name!r}"
        )
        raise DataError(f"--data {data}: no labels ({where}) to evaluate against")
    from dnnlab import runtime

    runtime.quiet_tensorflow()  # before Keras: without it, TensorFlow's start-up lines reach stderr
    from dnnlab.model.build import load_model
    from dnnlab.training import pipeline

    spec, _ = read_run_spec(run.config)
    model = load_model(path)
    scores = pipeline.score(model, dataset.x, dataset.y, pipeline.evaluation_batch_size(spec))
    return Evaluation(run.path, dataset.source, checkpoint, path, len(dataset.x), scores)
