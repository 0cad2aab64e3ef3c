"""The fit of a run: Keras's `fit` over the pipeline, with the callbacks that commit each
epoch.
"""

from __future__ import annotations

import time
from dataclasses import replace

from dnnlab import runtime
from dnnlab.data import datasets
from dnnlab.files import safe_yaml
from dnnlab.files.atomic import (
    atomic_copy,
)
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import TrainState
from dnnlab.spec.models import Spec

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.model.transfer import set_frozen  # noqa: E402
from dnnlab.training.callbacks.divergence import (  # noqa: E402
    CollapseRule,
    Divergence,
    StopOnNaN,
    chance_accuracy,
)
from dnnlab.training.callbacks.early_stopping import EpochSaver, ResumableEarlyStopping  # noqa: E402
from dnnlab.training.callbacks.epoch_seeder import EpochSeeder  # noqa: E402
from dnnlab.training.callbacks.plateau import schedule_callbacks  # noqa: E402
from dnnlab.training.callbacks.protocol import Resumable  # noqa: E402
from dnnlab.training.callbacks.recorder import Recorder  # noqa: E402
from dnnlab.training.checkpoints import keep_only  # noqa: E402
from dnnlab.training.execution import Execution  # noqa: E402
from dnnlab.training.greedy import Pretraining  # noqa: E402
from dnnlab.training.pipeline import (  # noqa: E402
    contract_order,
    evaluation_batch_size,
    make_train_dataset,
    make_validation_dataset,
)
from dnnlab.training.setup import build_for_fit, compile_model, steps_per_epoch  # noqa: E402


class Session:
    """One process's share of a run: from the last committed epoch to the planned total."""

    def __init__(
        self, run: RunDir, spec: Spec, dataset: datasets.Dataset, state: TrainState, progress: bool = True
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
        state.callbacks = {cb.state_key: cb.state_dict() for cb in self.resumables}
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
        """Train to `epochs`; with greedy pretraining, first its phases left; with transfer
        learning, first with the reused layers frozen."""
        self.planned_epochs = epochs
        if self.state.pretrain is not None:
            divergence = Pretraining(self.run, self.spec, self.dataset, self.state, self.progress).fit(model)
            if divergence is not None:
                self.divergence = divergence
                return "diverged"
            self.committed = self.state.without_previous()  # the fine-tune's first `previous`
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
        """Géron's second phase: every layer trainable, a fresh optimizer at the fine-tuning
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
        recorder = Recorder(self.record_epoch, self.steps_per_epoch, self.collapse_rule())
        from dnnlab.training.callbacks.progress import progress_callback

        callbacks = [
            EpochSeeder(spec.seed, epoch_variable),
            StopOnNaN(),
            *self.resumables,
            keras.callbacks.TensorBoard(log_dir=str(self.run.tensorboard), write_graph=False),
            recorder,
        ]
        if training.diagnostics is not None:  # before the recorder: its rows precede the commit
            from dnnlab.training.callbacks.diagnostics import training_callback

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

    def collapse_rule(self) -> CollapseRule | None:
        """The rule that calls a finite but exploded run diverged, with the loss at initialization
        the run's setup measured and kept in run.json (none for a run begun before the rule)."""
        initial = self.run.read_record().extra.get("initial_loss")
        if not isinstance(initial, (int, float)) or isinstance(initial, bool):
            return None
        return CollapseRule(float(initial), chance_accuracy(self.dataset.y_train, self.dataset.info.task))

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
                callback.load_state_dict(self.state.callbacks[callback.state_key])
        return found


def live_run(run: RunDir, spec: Spec):
    """The MLflow run of `training.mlflow`, or None when the spec does not ask for one."""
    settings = spec.training.mlflow
    if settings is None:
        return None
    from dnnlab.training.mlflow_tracking import LiveRun

    config = safe_yaml.read_yaml_file(run.config)
    return LiveRun.open(run.path, config, settings.tracking_uri, settings.experiment)


PROBE_ROWS = 2048  # training rows the loss at initialization is measured on


def initial_loss(model: keras.Model, spec: Spec, dataset: datasets.Dataset) -> float:
    """The loss of the untrained model on the first training rows, in inference mode (no dropout,
    no batch-norm update, no random draw: the run is unchanged by it)."""
    x, y = dataset.x_train[:PROBE_ROWS], dataset.y_train[:PROBE_ROWS]
    outputs = model(x, training=False)
    loss = keras.losses.get(spec.training.loss)(y, outputs)
    return float(keras.ops.convert_to_numpy(keras.ops.mean(loss)))
