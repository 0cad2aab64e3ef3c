"""Divergence: a loss that is no longer finite, or one that exploded and left the model at chance.

Two rules (docs/faults.md, "Diverged runs"):
- a batch or epoch value that is not finite stops the run at once;
- an epoch whose training loss is more than `EXPLOSION_FACTOR` times the loss at initialization
  (measured on a probe of training rows before the first epoch) with accuracy near chance (no more
  than `NEAR_CHANCE` of the way from always predicting the most frequent class to perfect) has
  collapsed: SGD at rate 1000 with clipnorm 1.0 on digits reaches a loss of 75,000 in its first
  epoch and 17,000 in its second, at 18% accuracy where chance is 10%.
  Without an accuracy metric the loss alone decides, at `EXPLOSION_FACTOR_WITHOUT_ACCURACY`.
A slow or stalled run (a vanishing-gradient sigmoid stack, a high but stable rate) keeps a loss
near its initial value and completes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

EXPLOSION_FACTOR = 100.0
EXPLOSION_FACTOR_WITHOUT_ACCURACY = 1e4
NEAR_CHANCE = 0.1
ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")


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
    """The epoch (0-based) that diverged, the values that show it, and its learning rate;
    `reason` says why finite values count as diverged (None: they were not finite)."""

    epoch: int
    values: dict[str, float]
    learning_rate: float
    reason: str | None = None
    phase: str | None = None  # a pretraining phase, as `pretrain_1 (dense_1)`; None: the fine-tune


@dataclass(frozen=True)
class CollapseRule:
    """When finite values still mean a diverged run: see the module's docstring."""

    initial_loss: float
    chance_accuracy: float | None  # the most frequent class's share; None for regression

    def collapsed(self, logs: dict[str, float]) -> tuple[dict[str, float], str] | None:
        """The values and the reason when the epoch's `logs` show a collapse, else None."""
        loss = logs.get("loss")
        if loss is None or not math.isfinite(self.initial_loss) or self.initial_loss <= 0:
            return None
        accuracy_key = next((k for k in ACCURACY_KEYS if k in logs), None)
        if accuracy_key is None or self.chance_accuracy is None:
            if loss > EXPLOSION_FACTOR_WITHOUT_ACCURACY * self.initial_loss:
                return {"loss": loss}, (
                    f"more than {EXPLOSION_FACTOR_WITHOUT_ACCURACY:g} times the loss at initialization "
                    f"({self.initial_loss:.3g})"
                )
            return None
        accuracy = logs[accuracy_key]
        near_chance = self.chance_accuracy + NEAR_CHANCE * (1 - self.chance_accuracy)
        if loss > EXPLOSION_FACTOR * self.initial_loss and accuracy <= near_chance:
            return {"loss": loss, accuracy_key: accuracy}, (
                f"loss more than {EXPLOSION_FACTOR:g} times its value at initialization "
                f"({self.initial_loss:.3g}) with {accuracy_key} near chance (always predicting the most "
                f"frequent class gives {self.chance_accuracy:.3g})"
            )
        return None


def chance_accuracy(y_train: np.ndarray, task: str) -> float | None:
    """The accuracy of always predicting the most frequent training class (None: regression)."""
    if task != "classification" or y_train is None or len(y_train) == 0:
        return None
    counts = np.bincount(np.asarray(y_train).reshape(-1).astype(np.int64))
    return float(counts.max() / counts.sum())
