"""Custom Keras layers, only where Keras has none or Keras's is slow under XLA (dropout)."""

from __future__ import annotations

import keras
import tensorflow as tf
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


# --- dropout whose masks XLA compiles well -------------------------------------------------
#
# Keras's Dropout draws its mask with tf.nn.experimental.stateless_dropout, which XLA compiles
# into slow code on the CPU (epochs 2.5-5x slower than without XLA), so models with it trained
# without XLA. These subclasses draw the mask with the counter-based Threefry algorithm, which
# XLA generates natively (Philox, the only one TensorFlow's own kernels have, where XLA is off).
# The seed is the SeedGenerator state Keras's layer already has, [seed, step]: EpochSeeder sets
# it from (run seed, epoch, layer index) at each epoch start and each training call advances the
# step, so a mask is a function of (run seed, epoch, layer, step) on a run's execution path (XLA
# or not, recorded in state.json), and a resumed epoch draws the original masks. Being
# subclasses, they are everything that treats dropout specially (MC dropout, folding,
# diagnostics) already handles.

_ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946  # -SELU alpha * scale


def alpha_dropout_affine(rate: float) -> tuple[float, float, float]:
    """Keras's AlphaDropout: (a, b, dropped); a kept unit x becomes a * x + b, a dropped one
    `dropped` (SELU's saturation value, transformed), so SELU-normal input stays normal."""
    a = ((1 - rate) * (1 + rate * _ALPHA_P**2)) ** -0.5
    b = -a * _ALPHA_P * rate
    return a, b, a * _ALPHA_P + b


def mask_algorithm() -> str:
    """Threefry inside an XLA-compiled function, Philox elsewhere (the CPU kernels lack Threefry)."""
    from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext  # no public API

    return "threefry" if GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()) else "philox"


def keep_threshold(rate: float) -> int:
    """The 32-bit draw at or above which a unit is kept: round(rate * 2**32), capped."""
    return min(round(rate * 2**32), 2**32 - 1)


def seeded_keep_mask(layer: keras.layers.Layer, inputs, threshold=None) -> tf.Tensor:
    """True where the layer keeps a unit this step (probability 1 - rate); advances its step.

    Integer bits compared with `threshold` (keep_threshold of the layer's rate unless given as a
    tensor) skip the float conversion of a uniform draw.
    """
    state = layer.seed_generator.state
    seed = tf.cast(state.value, tf.int64)
    state.assign_add(tf.constant([0, 1], state.dtype))
    shape = concrete_noise_shape(inputs, layer.noise_shape)
    bits = tf.random.stateless_uniform(
        shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg=mask_algorithm()
    )
    if threshold is None:
        threshold = tf.constant(keep_threshold(layer.rate), tf.uint32)
    return bits >= threshold


def concrete_noise_shape(inputs, noise_shape):
    """The mask's shape: `noise_shape` with its None dimensions taken from `inputs`."""
    if noise_shape is None:
        return tf.shape(inputs)
    dims = tf.unstack(tf.shape(inputs))
    return tf.stack([dim if size is None else size for dim, size in zip(dims, noise_shape)])


@keras.saving.register_keras_serializable(package="dnnlab")
class SeededDropout(keras.layers.Dropout):
    """keras.layers.Dropout with Threefry masks seeded by (seed, epoch, layer, step): fast under XLA.

    The traced step reads the rate's keep threshold and scale from two variables rather than
    holding them as constants, so setting `rate` on a built layer changes what its already traced
    step computes (a sweep worker trains the next configuration on a traced model, see
    training.warm_models) and the values are the constants' own: the same bits either way. They
    are not the layer's weights (not tracked, not saved): the rate is in its config.
    """

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        object.__setattr__(self, "_rate", float(rate))
        threshold = keep_threshold(rate)
        scale = 1.0 / (1.0 - rate) if rate < 1 else 0.0  # float64: cast as a Python float would be
        held = self.__dict__.get("_rate_variables")
        if held is None:
            with tf.init_scope():  # created eagerly even if a layer is made while tracing
                held = (
                    tf.Variable(threshold, dtype=tf.int64, trainable=False),
                    tf.Variable(scale, dtype=tf.float64, trainable=False),
                )
            object.__setattr__(self, "_rate_variables", held)  # not tracked: not a weight
        else:
            held[0].assign(threshold)
            held[1].assign(scale)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        threshold, scale = self._rate_variables
        keep = seeded_keep_mask(self, inputs, tf.cast(threshold, tf.uint32))
        return tf.where(keep, inputs * tf.cast(scale, inputs.dtype), tf.constant(0.0, inputs.dtype))


@keras.saving.register_keras_serializable(package="dnnlab")
class SeededAlphaDropout(keras.layers.AlphaDropout):
    """keras.layers.AlphaDropout (Keras's formula: SELU's mean and variance kept) with the masks of
    SeededDropout."""

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        keep = seeded_keep_mask(self, inputs)
        a, b, dropped = alpha_dropout_affine(self.rate)
        return tf.where(keep, a * inputs + b, tf.constant(dropped, inputs.dtype))


# --- tied autoencoder weights ---------------------------------------------------------------


@keras.saving.register_keras_serializable(package="dnnlab")
class DenseTranspose(keras.layers.Layer):
    """A decoder layer whose kernel is the transpose of an encoder Dense layer's (Géron, Hands-On
    Machine Learning, ch. 17: tying weights halves an autoencoder's parameters). Only its bias
    is its own; the kernel stays the encoder layer's variable, so the optimizer trains it once
    through both uses.

    The config names the encoder layer (`tied_to`) rather than holding it, so a saved model does
    not store the kernel twice; `tie(model)` points each such layer at its encoder layer after
    building or loading (dnnlab.model.build.load_model does it).
    """

    def __init__(self, units: int, tied_to: str, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.tied_to = tied_to
        self.activation = keras.activations.get(activation)
        object.__setattr__(self, "_dense", None)  # not tracked: its weights belong to the encoder

    def attach(self, dense: keras.layers.Dense) -> None:
        object.__setattr__(self, "_dense", dense)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        if self._dense is None:
            raise ValueError(
                f"DenseTranspose {self.name!r} is not tied to {self.tied_to!r} yet; call tie(model)"
            )
        outputs = ops.matmul(inputs, ops.transpose(self._dense.kernel)) + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "tied_to": self.tied_to,
            "activation": keras.activations.serialize(self.activation),
        }


def tie(model: keras.Model) -> keras.Model:
    """Point every DenseTranspose of `model` at the encoder layer its config names."""
    for layer in model.layers:
        if isinstance(layer, DenseTranspose):
            layer.attach(model.get_layer(layer.tied_to))
    return model
