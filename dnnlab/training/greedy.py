"""Greedy layer-wise pretraining of a run (`training.pretrain`), before its fine-tune.

Each hidden dense layer in turn trains as a one-layer autoencoder (dnnlab.model.greedy) for
`epochs_per_layer` epochs on the codes of the layers below it, computed from the pretraining
rows: the labelled training rows and, with `data.unlabeled: rest`, the unlabelled ones; never a
validation or test row. Each phase compiles the spec's optimizer afresh at its learning rate
(no schedule: the schedule is the fine-tune's), and its epochs are committed as the run's are:

- its autoencoder's checkpoint `checkpoints/pretrain-<phase>-<epochs>.keras` (the phase's start
  is committed too, so a resumed phase never rebuilds its decoder);
- a row of pretrain.csv (phase, layer, epoch within the phase, lr, loss, seconds);
- state.json's `pretrain` record (phase, epochs, checkpoint, rows, checksum): the commit.

At a phase's last epoch the trained layers are copied into the classifier, which is saved as
`checkpoints/epoch-00000.keras` (the fine-tune's epoch 0) before the commit that starts the next
phase; copying is idempotent, so a kill between the two replays that epoch to the same weights.
Data order and noise are drawn from (seed, phase, epoch), so a resumed phase is exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dnnlab import runtime
from dnnlab.data import datasets
from dnnlab.errors import ModelFileError, RunDirError
from dnnlab.files.atomic import atomic_copy, atomic_save_model
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import PretrainState, TrainState
from dnnlab.spec.models import Spec
from dnnlab.spec.phases import Phase, hidden_dense, pretrain_phases, pretrain_record
from dnnlab.spec.training import NoSchedule

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.model.build import load_model  # noqa: E402
from dnnlab.model.greedy import codes, copy_back, phase_model  # noqa: E402
from dnnlab.model.keras_private import build_for_training  # noqa: E402
from dnnlab.model.optimizers import make_optimizer  # noqa: E402
from dnnlab.training.callbacks.divergence import Divergence, StopOnNaN  # noqa: E402
from dnnlab.training.callbacks.epoch_seeder import EpochSeeder, derived_seed  # noqa: E402
from dnnlab.training.callbacks.recorder import Recorder  # noqa: E402
from dnnlab.training.execution import Execution, apply_to_model, steps_per_execution  # noqa: E402
from dnnlab.training.pipeline import contract_order, make_train_dataset  # noqa: E402

DECODER_SEED = 1  # mixed into a phase's decoder seed, apart from its data order's


def pretraining_rows(dataset: datasets.Dataset) -> np.ndarray:
    """The rows pretraining sees: the training rows, then `data.unlabeled`'s (never validation
    or test rows)."""
    if dataset.x_unlabeled is None or not len(dataset.x_unlabeled):
        return dataset.x_train
    return np.concatenate([dataset.x_train, dataset.x_unlabeled])


def initial_state(run: RunDir) -> PretrainState:
    """The record of a run set up with pretraining to do: phase 1, nothing trained, no rows."""
    return PretrainState(phase=1, epochs_done=0, checkpoint=None, rows=0, sha256=run.write_pretrain_rows([]))


def plan_record(spec: Spec, dataset: datasets.Dataset) -> dict:
    """run.json's `pretrain`: the plan (method, epochs, phases) and the rows it trains on."""
    return {**pretrain_record(spec, dataset.info.input_shape), "rows": len(pretraining_rows(dataset))}


class Pretraining:
    """The pretraining phases of a run still to train, from state.json's `pretrain` record."""

    def __init__(self, run: RunDir, spec: Spec, dataset: datasets.Dataset, state: TrainState, progress: bool):
        self.run, self.spec, self.state, self.progress = run, spec, state, progress
        self.phases = pretrain_phases(spec, dataset.info.input_shape)
        self.dataset = dataset
        self.execution = Execution.from_dict(state.execution)
        self.rows = self._committed_rows()

    @property
    def done(self) -> bool:
        return self.state.pretrain.phase > len(self.phases)

    def fit(self, classifier: keras.Model) -> Divergence | None:
        """Train every phase left; the classifier ends with the pretrained layers. A non-finite
        loss stops pretraining and is returned."""
        if self.done:
            return None
        self.x = pretraining_rows(self.dataset)  # a copy with the unlabelled rows: only when needed
        while not self.done:
            divergence = self.fit_phase(classifier, self.state.pretrain.phase - 1)
            if divergence is not None:
                return divergence
        return None

    # --- one phase ---------------------------------------------------------------------
    def fit_phase(self, classifier: keras.Model, index: int) -> Divergence | None:
        """Train hidden block `index`'s autoencoder from its committed epoch to the last; its
        last epoch's commit copies the layer into the classifier and begins the next phase."""
        phase, training = self.phases[index], self.spec.training
        x = codes(classifier, index, self.x)
        steps = math.ceil(len(x) / training.batch_size)
        execution = replace(
            self.execution, steps_per_execution=steps_per_execution(training.steps_per_execution, steps)
        )
        if self.state.pretrain.checkpoint is None:
            model = self._new_phase_model(classifier, index, phase, steps, execution, x)
        else:
            model = self._load_phase_model(steps, execution, x)
        if self.progress:
            from dnnlab.console import stderr_console

            stderr_console().print(
                f"{phase.name}: {phase.layer} as an autoencoder of {phase.inputs} values, "
                f"{len(x)} rows, {training.pretrain.epochs_per_layer} epoch(s)",
                markup=False,
                highlight=False,
            )
        seed = derived_seed(self.spec.seed, index + 1)
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False)
        data = make_train_dataset(
            x, x, training.batch_size, seed, epoch_variable, execution.steps_per_execution
        )
        self.phase, self.model, self.classifier = phase, model, classifier
        recorder = Recorder(self.record_epoch, steps)
        model.fit(
            data,
            epochs=training.pretrain.epochs_per_layer,
            initial_epoch=self.state.pretrain.epochs_done,
            callbacks=[EpochSeeder(seed, epoch_variable), StopOnNaN(), recorder],
            shuffle=False,
            verbose=0,
        )
        if recorder.divergence is None:
            return None
        return replace(recorder.divergence, phase=f"{phase.name} ({phase.layer})")

    def _new_phase_model(self, classifier, index, phase: Phase, steps, execution, x) -> keras.Model:
        """Build and compile the phase's autoencoder and commit its start."""
        settings = getattr(self.spec.model, "autoencoder", None)
        seed = derived_seed(self.spec.seed, index + 1, DECODER_SEED)
        model = phase_model(classifier, index, phase.inputs, phase.loss, settings, seed)
        training = self.spec.training
        model.compile(
            optimizer=make_optimizer(
                training.optimizer, NoSchedule(type="none"), steps, training.pretrain.epochs_per_layer
            ),
            loss=phase.loss,
        )
        apply_to_model(model, execution, training.batch_size, len(x))
        build_for_training(model, x[:1], x[:1])
        path = self._checkpoint(0)
        atomic_save_model(model, path)
        self._commit(replace(self.state.pretrain, checkpoint=path.name), 0.0)
        return model

    def _load_phase_model(self, steps: int, execution: Execution, x: np.ndarray) -> keras.Model:
        """The phase's autoencoder from its committed checkpoint."""
        model = load_phase_checkpoint(self.run, self.state.pretrain, steps)
        apply_to_model(model, execution, self.spec.training.batch_size, len(x))
        build_for_training(model, x[:1], x[:1])
        return model

    # --- the commit ----------------------------------------------------------------------
    def record_epoch(self, epoch: int, lr: float, logs: dict[str, float], started: float) -> None:
        """Commit a finished epoch of the phase; at its last, the trained layers go into the
        classifier's epoch-0 checkpoint and the next phase begins."""
        epochs_done, pretrain = epoch + 1, self.state.pretrain
        last = epochs_done == self.spec.training.pretrain.epochs_per_layer
        if last:
            copy_back(self.model, self.classifier)
            initial = self.run.epoch_checkpoint(0)
            atomic_save_model(self.classifier, initial)
            atomic_copy(initial, self.run.last_checkpoint)
        else:
            checkpoint = self._checkpoint(epochs_done)
            atomic_save_model(self.model, checkpoint)
        seconds = time.perf_counter() - started
        self.rows.append(
            {
                "phase": self.phase.name,
                "layer": self.phase.layer,
                "epoch": epoch,
                "lr": lr,
                **contract_order(logs),
                "seconds": round(seconds, 3),
            }
        )
        sha256 = self.run.write_pretrain_rows(self.rows)
        if last:
            new = PretrainState(pretrain.phase + 1, 0, None, len(self.rows), sha256)
        else:
            new = PretrainState(pretrain.phase, epochs_done, checkpoint.name, len(self.rows), sha256)
        self._commit(new, seconds)

    def _commit(self, pretrain: PretrainState, seconds: float) -> None:
        """state.json with `pretrain` (the commit), then the phase checkpoints it no longer names
        removed and run.json's wall time."""
        self.state.pretrain = pretrain
        self.state.wall_seconds += seconds
        self.run.write_state(self.state)
        for path in self.run.checkpoints.glob("pretrain-*.keras"):
            if path.name != pretrain.checkpoint:
                path.unlink(missing_ok=True)
        if seconds:
            self.run.update_record(wall_seconds=round(self.state.wall_seconds, 3))

    def _checkpoint(self, epochs_done: int) -> Path:
        return self.run.checkpoints / checkpoint_name(self.state.pretrain.phase, epochs_done)

    def _committed_rows(self) -> list[dict]:
        check_rows(self.run, self.state.pretrain)
        return self.run.read_pretrain_rows()[: self.state.pretrain.rows]


def checkpoint_name(phase: int, epochs_done: int) -> str:
    return f"pretrain-{phase}-{epochs_done:05d}.keras"


def check_commit(run: RunDir, spec: Spec, dataset: datasets.Dataset, pretrain: PretrainState) -> None:
    """Before a resume trains anything: pretrain.csv holds the committed rows, and the phase
    checkpoint the commit names loads and has taken its epochs' steps (one RunDirError line)."""
    check_rows(run, pretrain)
    if pretrain.checkpoint is not None:
        if pretrain.phase > len(hidden_dense(spec)):
            raise RunDirError(
                f"{run.state_json}: pretrain phase {pretrain.phase} is past the last and names a "
                "checkpoint; the file was edited or damaged"
            )
        steps = math.ceil(len(pretraining_rows(dataset)) / spec.training.batch_size)
        load_phase_checkpoint(run, pretrain, steps)


def check_rows(run: RunDir, pretrain: PretrainState) -> None:
    if pretrain.rows and run.pretrain_sha256(pretrain.rows) != pretrain.sha256:
        raise RunDirError(
            f"{run.pretrain_csv}: its first {pretrain.rows} rows are not the ones committed "
            "(missing, cut or edited); restore it, or start a new run"
        )


def load_phase_checkpoint(run: RunDir, pretrain: PretrainState, steps: int) -> keras.Model:
    """The autoencoder checkpoint of the commit `pretrain`, checked: its name, that it loads, and
    its optimizer's steps (`steps` an epoch)."""
    expected = checkpoint_name(pretrain.phase, pretrain.epochs_done)
    path = run.checkpoints / expected  # never a path state.json spells out
    if pretrain.checkpoint != expected:
        raise RunDirError(
            f"{run.state_json}: pretrain checkpoint {pretrain.checkpoint!r} is not the one of phase "
            f"{pretrain.phase} after {pretrain.epochs_done} epochs; the file was edited or damaged"
        )
    try:
        model = load_model(path)
    except ModelFileError as exc:
        raise RunDirError(f"cannot resume pretraining: {exc}") from None
    taken = int(model.optimizer.iterations.numpy()) if model.optimizer is not None else None
    if taken != pretrain.epochs_done * steps:
        raise RunDirError(
            f"{path}: its optimizer has taken {taken} steps, but {pretrain.epochs_done} epochs make "
            f"{pretrain.epochs_done * steps} (a checkpoint of another phase or run)"
        )
    return model
