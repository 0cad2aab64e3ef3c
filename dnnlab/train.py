"""`dnnlab train`: fit orchestration, a record of every epoch, and exact resume.

Why training is arranged this way (see KERAS3.md):
- `fit(shuffle=True)` cannot replay its order after a restart, so the data order is a
  permutation drawn from (seed, epoch) inside a tf.data pipeline, read from an epoch variable.
- Dropout's seed state is not saved in a `.keras` file, so it is set from (seed, epoch) at the
  start of every epoch; a resumed epoch therefore draws the same masks as the original.
- Keras callbacks reset their counters in `on_train_begin`; the stateful ones here save and
  restore their state through `state.json`.
- Schedules live in the optimizer (evaluated on its saved `iterations`), so the learning rate
  after a resume is the one the uninterrupted run would have used.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import __version__, data, runtime
from dnnlab.errors import RunDirError
from dnnlab.runs import (
    RunDir,
    atomic_link,
    atomic_save_model,
    atomic_write_json,
    atomic_write_text,
    host,
    metric_mode,
    now,
)
from dnnlab.spec import CheckedSpec, Spec, parse_spec, read_yaml, spec_hash, spec_to_yaml

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab import schedules  # noqa: E402
from dnnlab.build import build_model, load_model, summary_text  # noqa: E402
from dnnlab.execution import Execution, apply_threads, apply_to_model, plan  # noqa: E402
from dnnlab.transfer import apply_transfer, set_frozen  # noqa: E402

log = logging.getLogger("dnnlab")
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str
    epochs_done: int
    best: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)


def float32_value(value: Any) -> float:
    """The shortest decimal that is the same float32 (Keras computes in float32): 0.002, not
    0.0020000000949949026."""
    return float(str(np.float32(value)))


def contract_order(logs: dict[str, float]) -> dict[str, float]:
    """loss, the metrics, val_loss, the val_ metrics: the column order of metrics.csv."""
    train = [k for k in logs if not k.startswith("val_")]
    val = [k for k in logs if k.startswith("val_")]
    ordered = sorted(train, key=lambda k: k != "loss") + sorted(val, key=lambda k: k != "val_loss")
    return {k: logs[k] for k in ordered}


def derived_seed(*parts: int) -> int:
    """A 31-bit seed mixed from several integers (run seed, epoch, layer index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def make_train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: tf.Variable):
    """Batches of one epoch in the order drawn from (seed, epoch); `epoch` is read when each
    epoch's iterator starts, so a resumed run replays the same order."""
    n = len(x)
    steps = math.ceil(n / batch_size)
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_indices(_):
        keys = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        )
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys)).batch(batch_size)

    return (
        tf.data.Dataset.from_tensors(0)
        .flat_map(epoch_indices)
        .map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))
        .apply(tf.data.experimental.assert_cardinality(steps))
        .prefetch(2)
    )


class EpochSeeder(keras.callbacks.Callback):
    """At each epoch start: point the data pipeline at the epoch and reseed every random layer."""

    def __init__(self, seed: int, epoch_variable: tf.Variable):
        super().__init__()
        self.seed = seed
        self.epoch_variable = epoch_variable

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_variable.assign(epoch)
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for index, state in enumerate(states):
            state.assign(np.array([derived_seed(self.seed, epoch, index), 0], dtype=state.dtype))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter, best value and best weights survive a restart.

    Keras keeps the best weights in memory only; here the best epoch's checkpoint is also kept
    as `checkpoints/early_stopping_best.keras` (see Session.record_epoch) and read back on
    resume, so `restore_best_weights` restores the same epoch as an uninterrupted run.
    """

    def __init__(self, best_weights_file: Path, **kwargs):
        super().__init__(**kwargs)
        self._restored = False
        self.best_weights_file = best_weights_file

    def on_train_begin(self, logs=None):
        if not self._restored:
            super().on_train_begin(logs)

    def get_state(self) -> dict[str, Any]:
        best = None if self.best is None or not np.isfinite(self.best) else float(self.best)
        return {
            "wait": int(self.wait),
            "best": best,
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().on_train_begin()
        self.wait = state["wait"]
        self.best = state["best"] if state["best"] is not None else self.best
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state.get("stopped_epoch", 0)
        if self.restore_best_weights and self.best_weights_file.exists():
            self.best_weights = load_model(self.best_weights_file, compile=False).get_weights()
        self._restored = True


class Recorder(keras.callbacks.Callback):
    """Persists every finished epoch: checkpoint, best checkpoint, metrics.csv, state.json.

    Runs after the other callbacks so the state it saves includes their view of this epoch.
    state.json is written last: it is the commit point that resume trusts.
    """

    def __init__(self, session: Session):
        super().__init__()
        self.session = session
        self.diverged = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._lr = schedules.epoch_learning_rate(self.model.optimizer, epoch, self.session.steps_per_epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float32_value(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        if not all(math.isfinite(v) for v in logs.values()):
            self.diverged = True
            self.model.stop_training = True
            return
        self.session.record_epoch(epoch, float32_value(self._lr), logs, self._start)


class Session:
    """One process's share of a run: from the last committed epoch to the planned total."""

    def __init__(self, run: RunDir, spec: Spec, dataset: data.Dataset, state: dict[str, Any]):
        self.run = run
        self.spec = spec
        self.dataset = dataset
        self.state = state
        self.rows: list[dict[str, Any]] = run.read_metrics()[: state["epochs_done"]]
        training = spec.training
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / training.batch_size)
        self.monitor = training.monitor
        self.mode = metric_mode(self.monitor)

    # --- epoch records -------------------------------------------------------------------
    def improved(self, value: float) -> bool:
        best = self.state["best"]["value"]
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def record_epoch(self, epoch: int, lr: float, logs: dict[str, float], started: float) -> None:
        """Commit a finished epoch; `seconds` covers the training and the checkpoint save."""
        run, state = self.run, self.state
        epochs_done = epoch + 1
        checkpoint = run.epoch_checkpoint(epochs_done)
        atomic_save_model(self.model, checkpoint)
        seconds = time.perf_counter() - started
        self.rows.append({"epoch": epoch, "lr": lr, **contract_order(logs), "seconds": round(seconds, 3)})
        value = logs.get(self.monitor)
        if value is not None and self.improved(value):
            state["best"] = {"metric": self.monitor, "mode": self.mode, "value": value, "epoch": epoch}
            atomic_link(checkpoint, run.best_checkpoint)
        for callback in self.stateful_callbacks:
            if isinstance(callback, ResumableEarlyStopping) and callback.restore_best_weights:
                if callback.best_epoch == epoch:
                    atomic_link(checkpoint, callback.best_weights_file)
        run.write_metrics(self.rows)
        state.update(
            epochs_done=epochs_done,
            checkpoint=checkpoint.name,
            callbacks={cb.__class__.__name__: cb.get_state() for cb in self.stateful_callbacks},
            wall_seconds=state.get("wall_seconds", 0.0) + seconds,
        )
        run.write_state(state)  # commit
        atomic_link(checkpoint, run.last_checkpoint)
        for old in run.checkpoints.glob("epoch-*.keras"):
            if old != checkpoint:
                old.unlink(missing_ok=True)
        run.update_run(
            epochs_done=epochs_done, best=state["best"], wall_seconds=round(state["wall_seconds"], 3)
        )

    # --- the fit ---------------------------------------------------------------------------
    def fit(self, model: keras.Model, epochs: int) -> str:
        """Train to `epochs`; with transfer learning, first with the reused layers frozen."""
        self.planned_epochs = epochs
        transfer = self.state.get("transfer")
        if transfer and not transfer["unfrozen"]:
            boundary = self.spec.model.transfer.freeze_epochs
            if self.state["epochs_done"] < boundary:
                status = self.fit_phase(model, min(boundary, epochs))
                if status != "completed" or model.stop_training or epochs <= boundary:
                    return status
            self.unfreeze(model)
        return self.fit_phase(model, epochs)

    def unfreeze(self, model: keras.Model) -> None:
        """The notes' second phase: every layer trainable, a fresh optimizer at the fine-tuning
        learning rate (Keras needs a new compile after `trainable` changes)."""
        transfer = self.spec.model.transfer
        set_frozen(model, self.state["transfer"]["layers"], frozen=False)
        optimizer = self.spec.training.optimizer
        rate = transfer.fine_tune_learning_rate or optimizer.learning_rate / 10
        execution = Execution.from_dict(self.state["execution"])
        compile_model(model, self.spec, self.steps_per_epoch, execution, rate)
        self.state["transfer"]["unfrozen"] = True

    def fit_phase(self, model: keras.Model, epochs: int) -> str:
        """Train from the committed epoch to `epochs`; returns the final status."""
        self.model = model
        spec, dataset, training = self.spec, self.dataset, self.spec.training
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False)
        train_data = make_train_dataset(
            dataset.x_train, dataset.y_train, training.batch_size, spec.seed, epoch_variable
        )
        validation = (dataset.x_val, dataset.y_val) if dataset.x_val is not None else None
        self.stateful_callbacks = self.make_stateful_callbacks()
        recorder = Recorder(self)
        from dnnlab.progress import progress_callback

        callbacks = [
            EpochSeeder(spec.seed, epoch_variable),
            keras.callbacks.TerminateOnNaN(),
            *self.stateful_callbacks,
            keras.callbacks.TensorBoard(log_dir=str(self.run.tensorboard), write_graph=False),
            recorder,
            progress_callback(self.planned_epochs, self.steps_per_epoch, self.state["epochs_done"]),
        ]
        model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=self.state["epochs_done"],
            validation_data=validation,
            validation_batch_size=max(training.batch_size, 256),
            callbacks=callbacks,
            shuffle=False,  # the order comes from make_train_dataset
            verbose=0,
        )
        if recorder.diverged:
            return "diverged"
        return "completed"

    def make_stateful_callbacks(self) -> list[keras.callbacks.Callback]:
        training = self.spec.training
        found: list[keras.callbacks.Callback] = list(schedules.schedule_callbacks(training.schedule))
        stopping = training.early_stopping
        if stopping is not None:
            found.append(
                ResumableEarlyStopping(
                    best_weights_file=self.run.checkpoints / "early_stopping_best.keras",
                    monitor=stopping.monitor,
                    patience=stopping.patience,
                    min_delta=stopping.min_delta,
                    restore_best_weights=stopping.restore_best_weights,
                    mode=metric_mode(stopping.monitor),
                )
            )
        saved = self.state.get("callbacks", {})
        for callback in found:
            if callback.__class__.__name__ in saved:
                callback.set_state(saved[callback.__class__.__name__])
        return found


def compile_model(
    model: keras.Model,
    spec: Spec,
    steps_per_epoch: int,
    execution: Execution,
    learning_rate: float | None = None,
) -> None:
    """Compile with the spec's optimizer and schedule (at `learning_rate` when given)."""
    training = spec.training
    optimizer = training.optimizer
    if learning_rate is not None:
        optimizer = optimizer.model_copy(update={"learning_rate": learning_rate})
    model.compile(
        optimizer=schedules.make_optimizer(optimizer, training.schedule, steps_per_epoch, training.epochs),
        loss=training.loss,
        metrics=list(training.metrics or []),
    )
    apply_to_model(model, execution)


def no_best_yet(monitor: str) -> dict[str, Any]:
    """The `best` record of a run before its first finished epoch."""
    return {"metric": monitor, "mode": metric_mode(monitor), "value": None, "epoch": None}


def run_record(spec: Spec, checked_hash: str, command: list[str], epochs: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "status": "running",
        "started": now(),
        "finished": None,
        "epochs_done": 0,
        "epochs_planned": epochs,
        "best": no_best_yet(spec.training.monitor),
        "seed": spec.seed,
        "config_hash": checked_hash,
        "versions": {
            "dnnlab": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": sys.version.split()[0],
        },
        "host": host(),
        "command": command,
        "wall_seconds": 0.0,
    }


def start(
    checked: CheckedSpec, runs_dir: Path, name: str | None, command: list[str], run_path: Path | None = None
) -> TrainResult:
    """Train a new run. Everything that can be wrong with the input is found before the run
    directory is created, so a bad input leaves nothing behind. `run_path`: this exact directory
    instead of a time-stamped one under `runs_dir` (a sweep's trial)."""
    spec = checked.spec
    runtime.seed_everything(spec.seed, spec.training.deterministic)
    dataset = data.load(spec.data)
    steps = math.ceil(len(dataset.x_train) / spec.training.batch_size)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    execution = plan(spec, checked.info.input_shape, steps, gpu)
    apply_threads(execution)
    model = build_model(spec, checked.info.input_shape)
    transfer = spec.model.transfer
    reused = apply_transfer(model, transfer) if transfer else []
    compile_model(model, spec, steps, execution)

    run = RunDir.create_at(run_path) if run_path else RunDir.create(runs_dir, name or spec.name)
    atomic_write_text(run.config, spec_to_yaml(spec))
    atomic_write_json(run.preprocessing, dataset.preprocessing())
    atomic_write_text(run.summary_txt, summary_text(model))
    initial = run.epoch_checkpoint(0)
    atomic_save_model(model, initial)  # the last good checkpoint, even if epoch 1 diverges
    state = {
        "epochs_done": 0,
        "checkpoint": initial.name,
        "execution": execution.to_dict(),
        "best": no_best_yet(spec.training.monitor),
        "callbacks": {},
        "wall_seconds": 0.0,
    }
    if transfer:
        state["transfer"] = {"layers": reused, "unfrozen": transfer.freeze_epochs == 0}
    run.write_state(state)
    atomic_link(initial, run.last_checkpoint)
    run.write_metrics([])
    run.write_run(run_record(spec, spec_hash(spec), command, spec.training.epochs))
    return _train(run, spec, dataset, model, state, spec.training.epochs)


def resume(run_path: Path, epochs: int | None, command: list[str]) -> TrainResult:
    """Continue a run from its last committed epoch, exactly as if it had not stopped."""
    run = RunDir.open(run_path)
    record = run.read_run()
    spec = parse_spec(read_yaml(run.config), str(run.config))
    if spec_hash(spec) != record.get("config_hash"):
        raise RunDirError(
            f"{run.config}: edited since the run started (hash differs); a resumed run must "
            "train the spec it started with. Start a new run with the edited spec instead."
        )
    state = run.read_state()
    if record.get("status") == "completed" and epochs is None:
        raise RunDirError(
            f"{run.path}: completed after {state['epochs_done']} epochs; pass --epochs N to train it further"
        )
    planned = epochs or record.get("epochs_planned") or spec.training.epochs
    if epochs and epochs > spec.training.epochs and spec.training.schedule.type == "one_cycle":
        log.warning(
            "training.schedule: one_cycle keeps the cycle of %d epochs it was compiled with; "
            "epochs past it run at final_lr",
            spec.training.epochs,
        )
    if planned <= state["epochs_done"]:
        raise RunDirError(
            f"{run.path}: {state['epochs_done']} epochs already done; pass --epochs N with N > "
            f"{state['epochs_done']} to train further"
        )
    run.lock()  # a killed process leaves status 'running'; the lock refuses a live one
    runtime.seed_everything(spec.seed, spec.training.deterministic)
    dataset = data.load(spec.data)
    execution = Execution.from_dict(state["execution"])  # exactly as the run started
    apply_threads(execution)
    checkpoint = run.checkpoints / state["checkpoint"]
    if not checkpoint.exists():
        checkpoint = run.last_checkpoint
    # The loaded optimizer keeps its variables (iterations: the schedule position).
    model = load_model(checkpoint)
    apply_to_model(model, execution)
    run.update_run(status="running", finished=None, epochs_planned=planned, command=command)
    return _train(run, spec, dataset, model, state, planned)


def _train(
    run: RunDir, spec: Spec, dataset: data.Dataset, model, state: dict[str, Any], epochs: int
) -> TrainResult:
    session = Session(run, spec, dataset, state)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        status = session.fit(model, epochs)
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException:
        run.update_run(status="failed", finished=now())
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if status in ("completed", "diverged"):
        final = model if status == "completed" else load_model(run.last_checkpoint)
        atomic_save_model(final, run.model_file)
    record = run.update_run(status=status, finished=now())
    run.unlock()
    return TrainResult(run.path, status, record["epochs_done"], record["best"])


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
