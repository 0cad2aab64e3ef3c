"""Custom Keras layers, only where Keras has none."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dnnlab")
class RReLU(keras.layers.Layer):
    """Randomized leaky ReLU (Xu et al., 2015).

    In training, each activation's negative slope is drawn uniformly from [lower, upper];
    at inference the slope is their mean, (lower + upper) / 2. Keras has no such layer
    (TensorFlow Addons, which had one, is discontinued).
    """

    def __init__(self, lower: float = 1 / 8, upper: float = 1 / 3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= lower <= upper:
            raise ValueError(
                f"Expected 0 <= lower <= upper for RReLU. Received: lower={lower}, upper={upper}"
            )
        self.lower = float(lower)
        self.upper = float(upper)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if training:
            slope = keras.random.uniform(
                ops.shape(inputs),
                minval=self.lower,
                maxval=self.upper,
                dtype=inputs.dtype,
                seed=self.seed_generator,
            )
        else:
            slope = (self.lower + self.upper) / 2
        return ops.where(inputs >= 0, inputs, inputs * slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lower": self.lower, "upper": self.upper, "seed": self.seed}
