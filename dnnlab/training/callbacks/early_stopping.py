"""Early stopping whose counters and best weights survive a resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import keras

from dnnlab.errors import RunDirError
from dnnlab.files.atomic import atomic_copy, atomic_save_model
from dnnlab.model.build import load_model
from dnnlab.rundir.better import metric_mode
from dnnlab.training.callbacks.protocol import SharedImprovementRule, finite_or_none


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


class ResumableEarlyStopping(SharedImprovementRule, keras.callbacks.EarlyStopping):
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

    def state_dict(self) -> dict[str, Any]:
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

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
