"""Stopping a run whose loss is no longer finite, quietly, with what happened."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras


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
