"""The callbacks of a training run, and the protocol that lets the stateful ones survive a restart.

Keras callbacks reset their counters in `on_train_begin`, and BackupAndRestore does not save
them, so every new `fit` (and so every resumed run) would forget them (see docs/keras3.md). A
`Resumable` callback names its entry in state.json's `callbacks` mapping (`state_key`) and gives
and takes its state as a JSON-ready dict: the trainer saves it at every epoch commit and hands
it back on resume. Every "improved" decision goes through dnnlab.runs.is_better.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import keras
import numpy as np

from dnnlab import schedules
from dnnlab.build import load_model
from dnnlab.errors import RunDirError
from dnnlab.keras_private import ImprovementRuleHook
from dnnlab.runs import atomic_copy, atomic_save_model, is_better, metric_mode


@runtime_checkable
class Resumable(Protocol):
    """A callback whose state is saved in state.json under `state_key` and restored on resume."""

    state_key: ClassVar[str]

    def get_state(self) -> dict[str, Any]:
        """The state as plain JSON values (a non-finite number as null)."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from what get_state returned, before the next `fit` starts."""
        ...


def finite_or_none(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def float32_value(value: Any) -> float:
    """The shortest decimal that is the same float32 (Keras computes in float32): 0.002, not
    0.0020000000949949026."""
    return float(str(np.float32(value)))


def derived_seed(*parts: int) -> int:
    """A 31-bit seed mixed from several integers (run seed, epoch, layer index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


class _SharedRule(ImprovementRuleHook):
    def is_improvement(self, value, reference) -> bool:
        reference = None if reference is None else float(reference)
        return is_better(float(value), reference, self.mode, self.min_delta)


class EpochSaver:
    """Writes the model as it is at an epoch's end, serializing it once per epoch: a second file
    of the same epoch (early stopping's best weights, then the epoch checkpoint) is a copy of the
    first's bytes, since no callback changes the weights in between. Serializing the quick
    start's model costs about 30 ms, as much as one of its later epochs; copying 250 kB does not.
    Each file stays independent (see docs/faults.md)."""

    def __init__(self) -> None:
        self._saved: tuple[int, Path] | None = None

    def save(self, model: keras.Model, epoch: int, path: Path) -> None:
        if self._saved is not None and self._saved[0] == epoch and self._saved[1].exists():
            atomic_copy(self._saved[1], path)
        else:
            atomic_save_model(model, path)
        self._saved = (epoch, Path(path))


class ResumableEarlyStopping(_SharedRule, keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter, best value and best weights survive a restart.

    Keras keeps the best weights in memory only; with `restore_best_weights` this callback also
    saves them to `best_weights_file` whenever the best epoch changes, and reads them back on
    resume, so the run restores the same epoch as an uninterrupted one. (A kill between that
    save and the epoch's commit replays the epoch on resume, which saves the same weights again.)
    """

    state_key: ClassVar[str] = "early_stopping"

    def __init__(
        self, best_weights_file: Path, monitor: str = "val_loss", saver: EpochSaver | None = None, **kwargs
    ):
        kwargs.setdefault("mode", metric_mode(monitor))
        super().__init__(monitor=monitor, **kwargs)
        self._restored = False
        self.best_weights_file = Path(best_weights_file)
        self.saver = saver or EpochSaver()

    def on_train_begin(self, logs=None):
        if not self._restored:
            super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.restore_best_weights and self.best_epoch == epoch and self.best_weights is not None:
            self.saver.save(self.model, epoch, self.best_weights_file)

    def get_state(self) -> dict[str, Any]:
        return {
            "wait": int(self.wait),
            "best": finite_or_none(self.best),
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
        }

    @classmethod
    def has_stopped(cls, states: dict[str, dict[str, Any]]) -> bool:
        """Whether the callback states of a run (state.json's `callbacks`) say it stopped early."""
        return (states.get(cls.state_key) or {}).get("stopped_epoch", 0) > 0

    def set_state(self, state: dict[str, Any]) -> None:
        super().on_train_begin()
        self.wait = state["wait"]
        self.best = state["best"] if state["best"] is not None else self.best
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state.get("stopped_epoch", 0)
        if self.restore_best_weights:
            if not self.best_weights_file.exists():  # saved at epoch 0 on: restoring nothing would be silent
                raise RunDirError(
                    f"{self.best_weights_file}: missing, so the weights of epoch {self.best_epoch + 1} "
                    "that early stopping restores are lost; start a new run"
                )
            self.best_weights = load_model(self.best_weights_file, compile=False).get_weights()
        self._restored = True


class PlateauScheduler(_SharedRule, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau (performance scheduling) whose wait / best / cooldown survive a restart.

    A new instance starts fresh (its constructor does that) and `fit` never resets it; a resumed
    run calls set_state with what get_state returned at the checkpoint. The learning rate itself
    is the optimizer's variable, saved in the .keras file.
    """

    state_key: ClassVar[str] = "plateau"

    def __init__(self, monitor: str = "val_loss", **kwargs):
        kwargs.setdefault("mode", metric_mode(monitor))
        super().__init__(monitor=monitor, **kwargs)

    def on_train_begin(self, logs=None):
        pass

    def get_state(self) -> dict[str, Any]:
        """wait, best and cooldown_counter, JSON-serializable (a non-finite best is null)."""
        return {
            "wait": int(self.wait),
            "best": finite_or_none(self.best),
            "cooldown_counter": int(self.cooldown_counter),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.best = None if state["best"] is None else float(state["best"])
        self.cooldown_counter = int(state["cooldown_counter"])


def schedule_callbacks(schedule_spec: Any) -> list[keras.callbacks.Callback]:
    """The callbacks a schedule needs beside the optimizer: PlateauScheduler for plateau."""
    if schedule_spec.type != "plateau":
        return []
    return [
        PlateauScheduler(
            monitor=schedule_spec.monitor,
            factor=schedule_spec.factor,
            patience=schedule_spec.patience,
            min_delta=schedule_spec.min_delta,
            cooldown=schedule_spec.cooldown,
            min_lr=schedule_spec.min_lr,
        )
    ]


class EpochSeeder(keras.callbacks.Callback):
    """At each epoch start: point the data pipeline at the epoch and reseed every random layer.

    Dropout's seed state is not saved in a `.keras` file; set from (seed, epoch) at every epoch
    start, a resumed epoch draws the same masks as the original. (dnnlab's seeded dropout
    advances the state's second element, the step, once per training call: dnnlab/layers.py.)
    """

    def __init__(self, seed: int, epoch_variable: Any):
        super().__init__()
        self.seed = seed
        self.epoch_variable = epoch_variable

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_variable.assign(epoch)
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for index, state in enumerate(states):
            state.assign(np.array([derived_seed(self.seed, epoch, index), 0], dtype=state.dtype))


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is not finite, silently.

    Keras's TerminateOnNaN prints "Batch N: Invalid loss" on stdout, which must hold nothing but
    the run directory (`RUN=$(dnnlab train ...)`); the Recorder reports the divergence instead.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


@dataclass(frozen=True)
class Divergence:
    """The epoch (0-based) whose logs were not finite, which values, and its learning rate."""

    epoch: int
    values: dict[str, float]
    learning_rate: float


class Recorder(keras.callbacks.Callback):
    """Hands every finished epoch to `commit(epoch, lr, logs, started)`, or, when a value of the
    epoch is not finite, stops training and keeps a `Divergence` instead.

    It runs after the other callbacks, so the state committed includes their view of this epoch.
    `lr` is the learning rate of the epoch's first step, read before anything can lower it.
    """

    def __init__(self, commit: Callable[[int, float, dict[str, float], float], None], steps_per_epoch: int):
        super().__init__()
        self.commit = commit
        self.steps_per_epoch = steps_per_epoch
        self.divergence: Divergence | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._lr = schedules.epoch_learning_rate(self.model.optimizer, epoch, self.steps_per_epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float32_value(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        lr = float32_value(self._lr)
        non_finite = {k: v for k, v in logs.items() if not math.isfinite(v)}
        if non_finite:
            self.divergence = Divergence(epoch, non_finite, lr)
            self.model.stop_training = True
            return
        self.commit(epoch, lr, logs, self._start)
