"""Seeds drawn from (run seed, epoch) at the start of every epoch, so a resumed epoch draws
the same dropout masks.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def derived_seed(*parts: int) -> int:
    """A 31-bit seed mixed from several integers (run seed, epoch, layer index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


class EpochSeeder(keras.callbacks.Callback):
    """At each epoch start: point the data pipeline at the epoch and reseed every random layer.

    Dropout's seed state is not saved in a `.keras` file; set from (seed, epoch) at every epoch
    start, a resumed epoch draws the same masks as the original. (dnnlab's seeded dropout
    advances the state's second element, the step, once per training call: dnnlab/model/layers.py.)
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
