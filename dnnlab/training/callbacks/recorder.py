"""The commit of an epoch: metrics.csv, checkpoints and state.json (see
docs/run-directory.md, "the commit point").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import keras

from dnnlab.model import schedules
from dnnlab.training.callbacks.divergence import CollapseRule, Divergence
from dnnlab.training.callbacks.protocol import float32_value


class Recorder(keras.callbacks.Callback):
    """Hands every finished epoch to `commit(epoch, lr, logs, started)`, or, when a value of the
    epoch is not finite, stops training and keeps a `Divergence` instead.

    It runs after the other callbacks, so the state committed includes their view of this epoch.
    `lr` is the learning rate of the epoch's first step, read before anything can lower it.
    """

    def __init__(
        self,
        commit: Callable[[int, float, dict[str, float], float], None],
        steps_per_epoch: int,
        collapse: CollapseRule | None = None,
    ):
        super().__init__()
        self.commit = commit
        self.steps_per_epoch = steps_per_epoch
        self.collapse = collapse  # finite values that still mean a diverged run
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
        collapsed = self.collapse.collapsed(logs) if self.collapse is not None else None
        if collapsed is not None:
            self.divergence = Divergence(epoch, collapsed[0], lr, reason=collapsed[1])
            self.model.stop_training = True
            return
        self.commit(epoch, lr, logs, self._start)
