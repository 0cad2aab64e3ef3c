"""Setting up a run: data, model, optimizer and execution plan, the same for new and
resumed runs.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from dnnlab import __version__, runtime, xla_cache
from dnnlab.data import datasets
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import BestRecord, RunRecord, TrainState, host, now
from dnnlab.spec.checks import DATA_LOSS, has_weight_penalty
from dnnlab.spec.loading import spec_hash
from dnnlab.spec.models import Spec

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.model.build import build_model  # noqa: E402
from dnnlab.model.keras_private import build_for_training  # noqa: E402
from dnnlab.model.optimizers import make_optimizer  # noqa: E402
from dnnlab.model.transfer import apply_transfer, source_record  # noqa: E402
from dnnlab.training import warm_models  # noqa: E402
from dnnlab.training.checkpoints import load_committed  # noqa: E402
from dnnlab.training.execution import (  # noqa: E402
    Execution,
    apply_threads,
    apply_to_model,
    choose,
    compiled_step_key,
)
from dnnlab.training.greedy import check_commit  # noqa: E402


def compile_model(
    model: keras.Model,
    spec: Spec,
    dataset: datasets.Dataset,
    execution: Execution,
    learning_rate: float | None = None,
) -> None:
    """Compile with the spec's optimizer and schedule (at `learning_rate` when given), to train
    on `dataset`'s training rows."""
    training = spec.training
    optimizer = training.optimizer
    if learning_rate is not None:
        optimizer = optimizer.model_copy(update={"learning_rate": learning_rate})
    steps = steps_per_epoch(spec, dataset)
    metrics: list = list(training.metrics or [])
    if has_weight_penalty(spec):  # `loss` includes the l1/l2 penalty; `data_loss` is the loss alone
        metrics.append(keras.metrics.MeanMetricWrapper(keras.losses.get(training.loss), name=DATA_LOSS))
    model.compile(
        optimizer=make_optimizer(optimizer, training.schedule, steps, training.epochs),
        loss=training.loss,
        metrics=metrics,
    )
    apply_to_model(model, execution, training.batch_size, len(dataset.x_train))


def steps_per_epoch(spec: Spec, dataset: datasets.Dataset) -> int:
    return math.ceil(len(dataset.x_train) / spec.training.batch_size)


def new_record(spec: Spec, command: list[str]) -> RunRecord:
    """run.json of a run that is starting: the first file of its directory."""
    return RunRecord(
        name=spec.name,
        status="starting",
        started=now(),
        epochs_planned=spec.training.epochs,
        best=BestRecord.none_yet(spec.training.monitor),
        seed=spec.seed,
        config_hash=spec_hash(spec),
        versions={
            "dnnlab": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": sys.version.split()[0],
        },
        host=host(),
        command=command,
        wall_seconds=0.0,
    )


@dataclass
class Prepared:
    """What a process needs to train: the data, how to execute, and the model."""

    dataset: datasets.Dataset
    execution: Execution
    model: keras.Model
    reused: list[str]  # layers copied from another run (transfer learning; a new run only)
    state: TrainState | None = None  # the commit a resumed run continues from
    transfer_source: dict | None = None  # where the reused layers came from (transfer.source_record)
    plan_note: str | None = None  # why a new run's automatic plan chose XLA or not (one line)
    step_key: str | None = None  # what decides a new run's compiled step (xla_cache markers)


def prepare(
    spec: Spec, input_shape: tuple[int, ...] | None, state: TrainState | None, run: RunDir | None = None
) -> Prepared:
    """The setup start and resume share: seeds, data, the execution plan and thread pools, the model.

    A new run (no `state`) plans its execution and builds, transfers and compiles its model. A
    resumed run (`state` and its `run`) reuses the plan in state.json, so it executes exactly as
    it started, and loads the checkpoint of the latest commit that checks out (see
    checkpoints.load_committed), whose optimizer keeps its variables (iterations: the schedule
    position).
    """
    runtime.seed_everything(spec.seed, spec.training.deterministic)
    plan_note = key = None
    dataset = datasets.load(spec.data)
    steps = steps_per_epoch(spec, dataset)
    if state is None:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        key = compiled_step_key(spec, input_shape, steps)
        choice = choose(spec, input_shape, steps, gpu, cached=xla_cache.compiled_before(key))
        execution, plan_note = choice.execution, choice.reason
    else:
        execution = Execution.from_dict(state.execution)
    apply_threads(execution)
    reused: list[str] = []
    source = None
    if state is None or run is None:
        model = build_model(spec, input_shape)
        transfer = spec.model.transfer
        reused = apply_transfer(model, transfer) if transfer else []
        source = source_record(transfer) if transfer else None
        compile_model(model, spec, dataset, execution)
    else:
        resumed = load_committed(run, spec, state, steps)
        model, state = resumed.model, resumed.state
        if state.pretrain is not None:  # its commit checked before anything is trained
            check_commit(run, spec, dataset, state.pretrain)
        apply_to_model(model, execution, spec.training.batch_size, len(dataset.x_train))
    model = kept_or_built(model, spec, dataset, execution)
    return Prepared(dataset, execution, model, reused, state, source, plan_note, key)


def kept_or_built(
    model: keras.Model, spec: Spec, dataset: datasets.Dataset, execution: Execution
) -> keras.Model:
    """The model to fit: a sweep worker's kept model of `model`'s structure, now holding its
    values (training.warm_models: nothing to trace), else `model` built for fit (and kept). Runs
    with transfer or pretraining phases recompile their model, so none is kept for them."""
    if spec.model.transfer or spec.training.pretrain:
        build_for_fit(model, dataset)
        return model
    block = {**execution.to_dict(), "batch_size": spec.training.batch_size, "rows": len(dataset.x_train)}
    kept = warm_models.kept_for(model, block)
    if kept is not None:
        return kept
    build_for_fit(model, dataset)
    warm_models.keep(model, block)
    return model


def build_for_fit(model: keras.Model, dataset: datasets.Dataset) -> None:
    """The optimizer's and metrics' variables created before `fit`, so that its first epoch
    traces the train step once, not twice (see keras_private.build_for_training)."""
    build_for_training(model, dataset.x_train[:1], dataset.y_train[:1])
