"""The performance schedule (reduce on plateau) whose state survives a resume."""

from __future__ import annotations

from typing import Any, ClassVar

import keras

from dnnlab.rundir.better import metric_mode
from dnnlab.training.callbacks.protocol import SharedImprovementRule, finite_or_none


class PlateauScheduler(SharedImprovementRule, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau (performance scheduling) whose wait / best / cooldown survive a restart.

    A new instance starts fresh (its constructor does that) and `fit` never resets it; a resumed
    run calls load_state_dict with what state_dict returned at the checkpoint. The learning rate itself
    is the optimizer's variable, saved in the .keras file.
    """

    state_key: ClassVar[str] = "plateau"

    def __init__(self, monitor: str = "val_loss", **kwargs):
        kwargs.setdefault("mode", metric_mode(monitor))
        super().__init__(monitor=monitor, **kwargs)

    def on_train_begin(self, logs=None):
        pass

    def state_dict(self) -> dict[str, Any]:
        """wait, best and cooldown_counter, JSON-serializable (a non-finite best is null)."""
        return {
            "wait": int(self.wait),
            "best": finite_or_none(self.best),
            "cooldown_counter": int(self.cooldown_counter),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
