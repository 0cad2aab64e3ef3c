"""`dnnlab train`: fit orchestration, a record of every epoch, and exact resume.

Why training is arranged this way (see docs/keras3.md):
- `fit(shuffle=True)` cannot replay its order after a restart, so the data order is a
  permutation drawn from (seed, epoch) inside a tf.data pipeline, read from an epoch variable.
- Dropout's seed state is not saved in a `.keras` file, so it is set from (seed, epoch) at the
  start of every epoch (callbacks.EpochSeeder); a resumed epoch draws the same masks.
- Keras callbacks reset their counters in `on_train_begin`; the stateful ones here follow
  callbacks.Resumable and keep their state in state.json.
- Schedules live in the optimizer (evaluated on its saved `iterations`), so the learning rate
  after a resume is the one the uninterrupted run would have used.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from dnnlab import __version__, data, runtime, safe_yaml
from dnnlab.errors import RunDirError
from dnnlab.faults import record_failure, sigterm_interrupts
from dnnlab.runs import (
    BestRecord,
    RunDir,
    RunRecord,
    TrainState,
    TransferState,
    atomic_copy,
    atomic_save_model,
    atomic_write_json,
    atomic_write_text,
    check_new_run,
    host,
    now,
    remove_stale_temporaries,
)
from dnnlab.spec import CheckedSpec, Spec, read_run_spec, spec_hash, spec_to_yaml
from dnnlab.spec.checks import uses_batch_norm
from dnnlab.spec.models import CompactModel, recommended_initializer

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.build import build_model, load_model, summary_text  # noqa: E402
from dnnlab.callbacks import (  # noqa: E402
    Divergence,
    EpochSaver,
    EpochSeeder,
    Recorder,
    Resumable,
    ResumableEarlyStopping,
    StopOnNaN,
    schedule_callbacks,
)
from dnnlab.checkpoints import keep_only, load_committed  # noqa: E402
from dnnlab.execution import Execution, apply_threads, apply_to_model, plan  # noqa: E402
from dnnlab.hparams import write_hparams, write_results  # noqa: E402
from dnnlab.keras_private import build_for_training  # noqa: E402
from dnnlab.optimizers import make_optimizer  # noqa: E402
from dnnlab.transfer import apply_transfer, set_frozen  # noqa: E402

log = logging.getLogger("dnnlab")
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str
    epochs_done: int
    best: BestRecord  # epoch counts from 0, as in metrics.csv
    message: str | None = None  # for a diverged run: what happened and what to try
    test: dict[str, float] | None = None  # loss and metrics on the test split (completed runs)

    @property
    def exit_code(self) -> int:
        return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)


def contract_order(logs: dict[str, float]) -> dict[str, float]:
    """loss, the metrics, val_loss, the val_ metrics: the column order of metrics.csv."""
    train = [k for k in logs if not k.startswith("val_")]
    val = [k for k in logs if k.startswith("val_")]
    ordered = sorted(train, key=lambda k: k != "loss") + sorted(val, key=lambda k: k != "val_loss")
    return {k: logs[k] for k in ordered}


def make_train_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: tf.Variable, batches_per_element: int = 1
):
    """Batches of one epoch in the order drawn from (seed, epoch); `epoch` is read when each
    epoch's iterator starts, so a resumed run replays the same order. Each element `(x, y, rows)`
    holds `batches_per_element` consecutive batches (one compiled call's worth, see
    execution.block_train_step) in its first `rows` rows; the epoch's last element is padded to
    the same length, so that the step compiles for one shape. The rows of each batch do not
    depend on `batches_per_element`."""
    n = len(x)
    rows = batch_size * batches_per_element
    elements = math.ceil(n / rows)
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_indices(_):
        keys = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        )
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys)).batch(rows)

    def padded_block(indices):
        taken = tf.shape(indices)[0]
        indices = tf.pad(indices, [[0, rows - taken]])  # padding repeats row 0, never trained on
        return tf.gather(x_all, indices), tf.gather(y_all, indices), taken

    return (
        tf.data.Dataset.from_tensors(0)
        .flat_map(epoch_indices)
        .map(padded_block)
        .apply(tf.data.experimental.assert_cardinality(elements))
        .prefetch(2)
    )


def score(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    """Loss and metrics of `model` on (x, y) in ordered batches: the run's `test` record and
    `dnnlab evaluate` both compute them this way."""
    logs = model.evaluate(make_validation_dataset(x, y, batch_size), verbose=0, return_dict=True)
    return {k: float(v) for k, v in contract_order(logs).items()}


def evaluation_batch_size(spec: Spec) -> int:
    return max(spec.training.batch_size, 256)


def make_validation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int):
    """Validation batches in order. A dataset of our own rather than NumPy arrays: Keras's array
    adapter builds a parallel map that TensorFlow rewrites under op determinism and then logs a
    C++ `NodeDef mentions attribute use_unbounded_threadpool` error on stderr every epoch."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(2)


class Session:
    """One process's share of a run: from the last committed epoch to the planned total."""

    def __init__(
        self, run: RunDir, spec: Spec, dataset: data.Dataset, state: TrainState, progress: bool = True
    ):
        self.run = run
        self.progress = progress
        self.spec = spec
        self.dataset = dataset
        self.state = state
        self.committed = state.without_previous()  # as on disk: the next commit's `previous`
        self.rows: list[dict] = run.read_metrics()[: state.epochs_done]
        self.steps_per_epoch = steps_per_epoch(spec, dataset)
        self.monitor = spec.training.monitor
        self.divergence: Divergence | None = None
        self.live = live_run(run, spec)  # training.mlflow: the MLflow run that follows this one

    # --- epoch records -------------------------------------------------------------------
    def record_epoch(self, epoch: int, lr: float, logs: dict[str, float], started: float) -> None:
        """Commit a finished epoch; `seconds` covers the training and the checkpoint save."""
        run, state = self.run, self.state
        epochs_done = epoch + 1
        checkpoint = run.epoch_checkpoint(epochs_done)
        self.saver.save(self.model, epoch, checkpoint)
        seconds = time.perf_counter() - started
        self.rows.append({"epoch": epoch, "lr": lr, **contract_order(logs), "seconds": round(seconds, 3)})
        value = logs.get(self.monitor)
        if value is not None and state.best.improved_by(value):
            state.best = replace(state.best, value=value, epoch=epoch)
            atomic_copy(checkpoint, run.best_checkpoint)
        state.metrics_sha256 = run.write_metrics(self.rows)
        state.metrics_rows = len(self.rows)
        state.previous = self.committed
        state.epochs_done = epochs_done
        state.checkpoint = checkpoint.name
        state.callbacks = {cb.state_key: cb.get_state() for cb in self.resumables}
        state.wall_seconds += seconds
        run.write_state(state)  # commit
        self.committed = state.without_previous()
        atomic_copy(checkpoint, run.last_checkpoint)
        keep_only(run, {checkpoint.name, state.previous["checkpoint"]})
        run.update_record(epochs_done=epochs_done, best=state.best, wall_seconds=round(state.wall_seconds, 3))
        if self.live is not None:
            self.live.log_epoch(self.rows[-1])

    # --- the fit ---------------------------------------------------------------------------
    def fit(self, model: keras.Model, epochs: int) -> str:
        """Train to `epochs`; with transfer learning, first with the reused layers frozen."""
        self.planned_epochs = epochs
        transfer = self.state.transfer
        if transfer and not transfer.unfrozen:
            boundary = self.spec.model.transfer.freeze_epochs
            if self.state.epochs_done < boundary:
                status = self.fit_phase(model, min(boundary, epochs))
                if status != "completed" or model.stop_training or epochs <= boundary:
                    return status
            self.unfreeze(model)
        return self.fit_phase(model, epochs)

    def unfreeze(self, model: keras.Model) -> None:
        """The notes' second phase: every layer trainable, a fresh optimizer at the fine-tuning
        learning rate (Keras needs a new compile after `trainable` changes)."""
        transfer = self.spec.model.transfer
        set_frozen(model, self.state.transfer.layers, frozen=False)
        optimizer = self.spec.training.optimizer
        rate = transfer.fine_tune_learning_rate or optimizer.learning_rate / 10
        execution = Execution.from_dict(self.state.execution)
        compile_model(model, self.spec, self.dataset, execution, rate)
        build_for_fit(model, self.dataset)
        self.state.transfer = replace(self.state.transfer, unfrozen=True)

    def fit_phase(self, model: keras.Model, epochs: int) -> str:
        """Train from the committed epoch to `epochs`; returns the final status."""
        self.model = model
        spec, dataset, training = self.spec, self.dataset, self.spec.training
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False)
        per_call = Execution.from_dict(self.state.execution).steps_per_execution
        train_data = make_train_dataset(
            dataset.x_train, dataset.y_train, training.batch_size, spec.seed, epoch_variable, per_call
        )
        validation = (
            make_validation_dataset(dataset.x_val, dataset.y_val, evaluation_batch_size(spec))
            if dataset.x_val is not None
            else None
        )
        self.saver = EpochSaver()  # early stopping's best weights and the checkpoint: one serialization
        self.resumables = self.make_resumable_callbacks()
        recorder = Recorder(self.record_epoch, self.steps_per_epoch)
        from dnnlab.progress import progress_callback

        callbacks = [
            EpochSeeder(spec.seed, epoch_variable),
            StopOnNaN(),
            *self.resumables,
            keras.callbacks.TensorBoard(log_dir=str(self.run.tensorboard), write_graph=False),
            recorder,
        ]
        if training.diagnostics is not None:  # before the recorder: its rows precede the commit
            from dnnlab.diagnostics import training_callback

            committed = self.state.epochs_done * self.steps_per_epoch
            callbacks.insert(-1, training_callback(self.run, spec, model, dataset, committed))
        if self.progress:
            callbacks.append(
                progress_callback(self.planned_epochs, self.steps_per_epoch, self.state.epochs_done, per_call)
            )
        model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=self.state.epochs_done,
            validation_data=validation,
            callbacks=callbacks,
            shuffle=False,  # the order comes from make_train_dataset
            verbose=0,
        )
        if recorder.divergence is not None:
            self.divergence = recorder.divergence
            return "diverged"
        return "completed"

    def make_resumable_callbacks(self) -> list[Resumable]:
        """The spec's stateful callbacks, each continuing from its state in state.json."""
        training = self.spec.training
        found: list[Resumable] = list(schedule_callbacks(training.schedule))
        stopping = training.early_stopping
        if stopping is not None:
            found.append(
                ResumableEarlyStopping(
                    best_weights_file=self.run.early_stopping_best,
                    monitor=stopping.monitor,
                    patience=stopping.patience,
                    min_delta=stopping.min_delta,
                    restore_best_weights=stopping.restore_best_weights,
                    saver=self.saver,
                )
            )
        for callback in found:
            if callback.state_key in self.state.callbacks:
                callback.set_state(self.state.callbacks[callback.state_key])
        return found


def compile_model(
    model: keras.Model,
    spec: Spec,
    dataset: data.Dataset,
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
    model.compile(
        optimizer=make_optimizer(optimizer, training.schedule, steps, training.epochs),
        loss=training.loss,
        metrics=list(training.metrics or []),
    )
    apply_to_model(model, execution, training.batch_size, len(dataset.x_train))


def steps_per_epoch(spec: Spec, dataset: data.Dataset) -> int:
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

    dataset: data.Dataset
    execution: Execution
    model: keras.Model
    reused: list[str]  # layers copied from another run (transfer learning; a new run only)
    state: TrainState | None = None  # the commit a resumed run continues from


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
    dataset = data.load(spec.data)
    steps = steps_per_epoch(spec, dataset)
    if state is None:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        execution = plan(spec, input_shape, steps, gpu)
    else:
        execution = Execution.from_dict(state.execution)
    apply_threads(execution)
    reused: list[str] = []
    if state is None or run is None:
        model = build_model(spec, input_shape)
        transfer = spec.model.transfer
        reused = apply_transfer(model, transfer) if transfer else []
        compile_model(model, spec, dataset, execution)
    else:
        resumed = load_committed(run, spec, state, steps)
        model, state = resumed.model, resumed.state
        apply_to_model(model, execution, spec.training.batch_size, len(dataset.x_train))
    build_for_fit(model, dataset)
    return Prepared(dataset, execution, model, reused, state)


def build_for_fit(model: keras.Model, dataset: data.Dataset) -> None:
    """The optimizer's and metrics' variables created before `fit`, so that its first epoch
    traces the train step once, not twice (see keras_private.build_for_training)."""
    build_for_training(model, dataset.x_train[:1], dataset.y_train[:1])


def start(
    checked: CheckedSpec,
    runs_dir: Path,
    name: str | None,
    command: list[str],
    progress: bool = True,
    run_path: Path | None = None,
) -> TrainResult:
    """Train a new run. Everything that can be wrong with the input is found before the run
    directory is created, so a bad input (or an interrupt until then) leaves nothing behind. The
    directory appears with run.json in it (status `starting`), so a kill at any later instant
    leaves a run that `--resume` continues."""
    spec = checked.spec
    with sigterm_interrupts():
        if run_path is None:  # before the data and the model: a bad name or folder costs nothing
            check_new_run(runs_dir, name, spec.name)
        prepared = prepare(spec, checked.info.input_shape, state=None)
        record = new_record(spec, command)
        if run_path is not None:
            run = RunDir.create_at(run_path, record)
        else:
            run = RunDir.create(runs_dir, name or spec.name, record)
        try:
            return _train(run, spec, prepared, None, spec.training.epochs, progress)
        finally:
            run.unlock()


def _set_up(run: RunDir, spec: Spec, prepared: Prepared, epochs: int) -> TrainState:
    """The files of a new run after its run.json; state.json, written last, commits the setup
    and the status becomes `running`. Without state.json, `--resume` does all this again."""
    atomic_write_text(run.config, spec_to_yaml(spec))
    atomic_write_json(run.preprocessing, prepared.dataset.preprocessing())
    atomic_write_text(run.summary_txt, summary_text(prepared.model))
    initial = run.epoch_checkpoint(0)
    atomic_save_model(prepared.model, initial)  # the last good checkpoint, even if epoch 1 diverges
    atomic_copy(initial, run.last_checkpoint)
    metrics_sha256 = run.write_metrics([])
    write_hparams(run.tensorboard, yaml.safe_load(spec_to_yaml(spec)), run.path.name)
    transfer = spec.model.transfer
    state = TrainState(
        epochs_done=0,
        checkpoint=initial.name,
        execution=prepared.execution.to_dict(),
        best=BestRecord.none_yet(spec.training.monitor),
        transfer=TransferState(prepared.reused, transfer.freeze_epochs == 0) if transfer else None,
        metrics_rows=0,
        metrics_sha256=metrics_sha256,
    )
    run.write_state(state)
    run.update_record(status="running", epochs_planned=epochs)
    return state


def resume(run_path: Path, epochs: int | None, command: list[str], progress: bool = True) -> TrainResult:
    """Continue a run from its last committed epoch, exactly as if it had not stopped."""
    with sigterm_interrupts():
        run = RunDir.open(run_path)
        run.check_own_folders()
        record = run.read_record()
        if not run.state_json.is_file() and not run.config.is_file():
            raise RunDirError(
                f"{run.path}: stopped while starting, before its config.yaml was written; nothing was "
                "trained. Start the run again with `dnnlab train SPEC`"
            )
        spec, config_hash = read_run_spec(run.config)
        if config_hash != record.config_hash:
            raise RunDirError(
                f"{run.config}: edited since the run started (hash differs); a resumed run must "
                "train the spec it started with. Start a new run with the edited spec instead."
            )
        if not run.state_json.is_file():  # stopped during its setup: nothing trained, set it up again
            return _start_again(run, spec, epochs or spec.training.epochs, progress)
        return _continue(run, record, spec, epochs, command, progress)


def _start_again(run: RunDir, spec: Spec, epochs: int, progress: bool) -> TrainResult:
    """Set up a run stopped before its setup was committed from its config.yaml, then train it."""
    run.lock()
    try:
        remove_stale_temporaries(run.path)
        prepared = prepare(spec, data.describe(spec.data).input_shape, state=None)
        return _train(run, spec, prepared, None, epochs, progress)
    finally:
        run.unlock()


def _continue(
    run: RunDir, record: RunRecord, spec: Spec, epochs: int | None, command: list[str], progress: bool
) -> TrainResult:
    """Train a set-up run from its last committed epoch (or only finish it, see below)."""
    state = run.read_state(spec.training.monitor)
    if record.status == "completed" and epochs is None:
        raise RunDirError(
            f"{run.path}: completed after {state.epochs_done} epochs; pass --epochs N to train it further"
        )
    planned = epochs or record.epochs_planned or spec.training.epochs
    if epochs and epochs > spec.training.epochs and spec.training.schedule.type == "one_cycle":
        log.warning(
            "training.schedule: one_cycle keeps the cycle of %d epochs it was compiled with; "
            "epochs past it run at final_lr",
            spec.training.epochs,
        )
    # Every epoch committed (or early stopping had stopped) but the finalisation (model.keras, the
    # status) cut by a kill or an interrupt: a fit of no epochs runs the end of training again,
    # where early stopping restores its best weights.
    stopped = ResumableEarlyStopping.has_stopped(state.callbacks)
    finishing = record.status != "completed" and (state.epochs_done >= planned or stopped)
    if finishing:
        planned = state.epochs_done
    elif planned <= state.epochs_done:
        raise RunDirError(
            f"{run.path}: {state.epochs_done} epochs already done; pass --epochs N with N > "
            f"{state.epochs_done} to train further"
        )
    run.lock()  # a killed process leaves status 'running'; the lock refuses a live one
    try:
        remove_stale_temporaries(run.path)  # a killed process's; none is being written under the lock
        prepared = prepare(spec, None, state, run)
        run.update_record(status="running", finished=None, epochs_planned=planned, command=command)
        return _train(run, spec, prepared, prepared.state, planned, progress)
    finally:
        run.unlock()


def _train(
    run: RunDir, spec: Spec, prepared: Prepared, state: TrainState | None, epochs: int, progress: bool = True
) -> TrainResult:
    """Set up a new run (no `state`), fit and finish it, all under one protection: an interrupt at
    any point records `interrupted`, a failure (a full disk too) `failed`."""
    session = None
    try:
        if state is None:
            state = _set_up(run, spec, prepared, epochs)
        session = Session(run, spec, prepared.dataset, state, progress)
        status = session.fit(prepared.model, epochs)
        test = _finish(run, spec, prepared, state, status)
        record = run.update_record(status=status, finished=now(), test=test)
    except KeyboardInterrupt:
        status = "interrupted"
        record = run.update_record(status=status, finished=now())
        if state is not None:  # TensorBoard's best so far, as at the end of every process's share
            write_results(run.tensorboard, state.best, None, state.epochs_done)
    except BaseException as exc:
        failure = record_failure(run, exc)
        if session is not None and session.live is not None:
            session.live.finish("failed")
        if failure is exc:
            raise
        raise failure from exc
    if session is not None and session.live is not None:
        session.live.finish(status)
    message = divergence_message(spec, session.divergence) if session and session.divergence else None
    best = record.best or BestRecord.none_yet(spec.training.monitor)
    return TrainResult(run.path, status, record.epochs_done, best, message, record.test)


def _finish(run: RunDir, spec: Spec, prepared: Prepared, state: TrainState, status: str) -> dict | None:
    """model.keras, the test scores and TensorBoard's results; returns the test scores."""
    if status in ("completed", "diverged"):
        final = prepared.model if status == "completed" else load_model(run.last_checkpoint)
        atomic_save_model(final, run.model_file)
    test = (
        _test_scores(prepared.model, prepared.execution, spec, prepared.dataset)
        if status == "completed"
        else None
    )
    write_results(run.tensorboard, state.best, test, state.epochs_done)
    return test


def live_run(run: RunDir, spec: Spec):
    """The MLflow run of `training.mlflow`, or None when the spec does not ask for one."""
    settings = spec.training.mlflow
    if settings is None:
        return None
    from dnnlab.tracking import LiveRun

    config = safe_yaml.read_yaml_file(run.config)
    return LiveRun.open(run.path, config, settings.tracking_uri, settings.experiment)


def _test_scores(
    model: keras.Model, execution: Execution, spec: Spec, dataset: data.Dataset
) -> dict[str, float] | None:
    """The kept model scored on the test split. `model` holds the weights just written to
    model.keras, so it is scored in memory, reusing the evaluation graph traced for validation,
    rather than loaded again; without XLA, as `dnnlab evaluate` scores model.keras, so that both
    give the same numbers."""
    if dataset.x_test is None or len(dataset.x_test) == 0:
        return None
    if execution.jit_compile:
        apply_to_model(
            model, replace(execution, jit_compile=False), spec.training.batch_size, len(dataset.x_train)
        )
    return score(model, dataset.x_test, dataset.y_test, evaluation_batch_size(spec))


# --- advice for a diverged run ------------------------------------------------------------


def divergence_message(spec: Spec, divergence: Divergence) -> str:
    """What went non-finite in which epoch, and the remedies the notes give that the spec lacks."""
    values = ", ".join(f"{name} {value}" for name, value in divergence.values.items())
    lr = divergence.learning_rate
    tips = [
        f"a lower learning rate (it was {lr:g} in that epoch; "
        f"e.g. training.optimizer.learning_rate: {lr / 10:g})"
    ]
    optimizer = spec.training.optimizer
    if not any(getattr(optimizer, key, None) for key in ("clipnorm", "clipvalue", "global_clipnorm")):
        tips.append("gradient clipping (training.optimizer.clipnorm: 1.0)")
    activation, initializer = _first_hidden_layer(spec)
    if activation is not None and initializer != recommended_initializer(activation):
        paired = recommended_initializer(activation)
        tips.append(f"the initializer the notes pair with {activation} (model.initializer: {paired})")
    if not uses_batch_norm(spec):
        tips.append("batch norm (model.normalization: batch_norm)")
    advice = tips[0] if len(tips) == 1 else ", ".join(tips[:-1]) + " or " + tips[-1]
    return f"training diverged in epoch {divergence.epoch + 1}: {values}. Try {advice}."


def _first_hidden_layer(spec: Spec) -> tuple[str | None, str | None]:
    """The activation and initializer names of the first hidden layer (None where not set)."""
    model = spec.model
    if isinstance(model, CompactModel):
        initializer = model.initializer.type if model.initializer else None
        activation = model.activation.type
        return activation, initializer or recommended_initializer(activation)
    for layer in model.layers[:-1]:
        if layer.type == "dense" and layer.activation is not None:
            return layer.activation.type, layer.initializer.type if layer.initializer else "glorot_uniform"
    return None, None
