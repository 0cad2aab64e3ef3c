"""A run's hyperparameters for trackers: the flattened spec, and TensorBoard's HParams summary.

`flatten_spec` has no heavy import (`mlflow-log` uses it too); the TensorBoard writers import
TensorFlow inside, and are called by training, which has imported it already.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dnnlab.rundir.records import BestRecord

Scalar = bool | int | float | str


def flatten_spec(config: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Every leaf of a resolved spec as `dotted.key -> value`; lists as JSON text, null as "none"
    (trackers take only numbers, booleans and strings)."""
    out: dict[str, Scalar] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_spec(value, dotted + "."))
        elif value is None:
            out[dotted] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[dotted] = value
        else:
            out[dotted] = json.dumps(value)
    return out


def write_hparams(log_dir: Path, config: dict[str, Any], trial_id: str) -> None:
    """Write the HParams session of a run into its tensorboard/ folder, once, at its start:
    `tensorboard --logdir runs` then shows a sweep in the HParams dashboard, with the epoch
    scalars of the run's train/ and validation/ folders as its metrics."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams(flatten_spec(config), trial_id=trial_id)


def write_results(log_dir: Path, best: BestRecord | None, test: dict[str, float] | None, step: int) -> None:
    """The run's best monitored value (`best_val_loss`) and test scores (`test_accuracy`) as
    scalars beside its HParams session, so the dashboard can sort and colour runs by them."""
    import tensorflow as tf

    values = {f"test_{k}": v for k, v in (test or {}).items()}
    if best is not None and best.value is not None:
        values[f"best_{best.metric}"] = best.value
    if not values:
        return
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        for tag, value in values.items():
            tf.summary.scalar(tag, value, step=step)
