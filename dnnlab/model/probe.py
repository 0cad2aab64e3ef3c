"""Per-layer statistics of a dense network on a fixed probe batch.

How the probe is run: batch norm in training mode (its batch statistics are what the deep-BN
phenomenon is about), every random layer (dropout, alpha dropout, RReLU) in inference mode, so a
measurement is a function of the weights and the probe alone. The moving averages batch norm
updates in training mode are put back afterwards: measuring never changes a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dnnlab import runtime
from dnnlab.errors import DnnlabError

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.model.layers import RReLU  # noqa: E402
from dnnlab.rundir.layers_csv import SATURATION_LEVEL  # noqa: E402

SATURATING = ("sigmoid", "tanh", "softsign")


DEAD_CAN_BE_ZERO = ("relu",)  # leaky variants, PReLU and ELU are never exactly zero


# --- the probe batch -----------------------------------------------------------------------


def probe_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Indices of the probe batch: `size` training rows drawn without replacement from `seed`,
    sorted, so a spec's measurement is the same in every process."""
    rng = np.random.default_rng([seed, 0x9E0B])
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def probe_batch(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = probe_rows(len(x), size, seed)
    return x[rows], y[rows]


# --- the layers measured -------------------------------------------------------------------


def activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a layer applies ('relu', 'sigmoid', ...); None for other layers."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(layer, keras.layers.PReLU):
        return "prelu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    if isinstance(layer, RReLU):
        return "rrelu"
    if isinstance(layer, keras.layers.Dense | keras.layers.Activation):
        return getattr(layer.activation, "__name__", "linear")
    return None


@dataclass(frozen=True)
class Block:
    """A Dense layer and the layer whose output is its activation (itself when inline)."""

    depth: int  # 1-based among the Dense layers
    dense: int  # index in model.layers
    output: int  # index in model.layers of the activation's output
    activation: str


def blocks(model: keras.Model) -> list[Block]:
    """Every Dense layer of a Sequential model in depth order, with its activation: the one inside
    the layer, else the first activation layer before the next Dense (batch norm before or after)."""
    layers = model.layers
    found: list[Block] = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Dense):
            continue
        output, name = index, activation_name(layer)
        if name == "linear":
            for later in range(index + 1, len(layers)):
                if isinstance(layers[later], keras.layers.Dense):
                    break
                later_name = activation_name(layers[later])
                if later_name is not None:
                    output, name = later, later_name
                    break
        found.append(Block(len(found) + 1, index, output, name))
    return found


def _training_flag(layer: keras.layers.Layer) -> bool:
    """Batch norm in training mode (batch statistics); random layers and the rest in inference."""
    return isinstance(layer, keras.layers.BatchNormalization)


# --- statistics of one activation ----------------------------------------------------------


def saturated_fraction(values: np.ndarray, activation: str) -> float | None:
    """Share of activation values whose derivative is below 5% of its maximum, computed from the
    output alone: sigmoid s(1-s) (max 1/4), tanh 1-t^2 (max 1), softsign (1-|y|)^2 (max 1)."""
    if activation == "sigmoid":
        derivative = values * (1 - values) / 0.25
    elif activation == "tanh":
        derivative = 1 - values**2
    elif activation == "softsign":
        derivative = (1 - np.abs(values)) ** 2
    else:
        return None
    return float(np.mean(derivative < SATURATION_LEVEL))


def dead_fraction(values: np.ndarray, activation: str) -> float | None:
    """Share of units that output zero for every probe row (ReLU)."""
    if activation not in DEAD_CAN_BE_ZERO:
        return None
    return float(np.mean(np.all(values == 0, axis=0)))


# --- measuring -----------------------------------------------------------------------------


class Prober:
    """Measures a model's per-layer statistics on one probe batch (one compiled function)."""

    def __init__(self, model: keras.Model, loss: str, x: np.ndarray, y: np.ndarray):
        self.model = model
        self.blocks = blocks(model)
        if not self.blocks:
            raise DnnlabError("diagnose: the model has no Dense layer to measure")
        self.x = tf.constant(x)
        self.y = tf.constant(y)
        self.loss = keras.losses.get(loss)
        self.kernels = [model.layers[b.dense].kernel for b in self.blocks]
        self.batch_norm_state = [
            v
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in layer.non_trainable_variables
        ]
        self.previous: list[np.ndarray] | None = None
        self._forward = tf.function(self._gradients_and_activations, reduce_retracing=True)

    def _gradients_and_activations(self, x, y):
        wanted = [b.output for b in self.blocks]
        activations = []
        with tf.GradientTape() as tape:
            h = x
            for index, layer in enumerate(self.model.layers):
                h = layer(h, training=_training_flag(layer))
                if index in wanted:
                    activations.append(h)
            loss = tf.reduce_mean(self.loss(y, h))
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        gradients = tape.gradient(loss, self.kernels)
        return gradients, [activations[wanted.index(b.output)] for b in self.blocks]

    def measure(self) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
        """One row per Dense layer (depth order), and the raw values for histograms."""
        saved = [v.numpy() for v in self.batch_norm_state]
        gradients, activations = self._forward(self.x, self.y)
        for variable, value in zip(self.batch_norm_state, saved):
            variable.assign(value)
        kernels = [k.numpy() for k in self.kernels]
        rows = []
        for i, block in enumerate(self.blocks):
            grad = gradients[i].numpy()
            act = activations[i].numpy()
            weight_norm = float(np.linalg.norm(kernels[i]))
            update = None
            if self.previous is not None:
                before = float(np.linalg.norm(self.previous[i]))
                update = float(np.linalg.norm(kernels[i] - self.previous[i])) / before if before else None
            rows.append(
                {
                    "depth": block.depth,
                    "layer": self.model.layers[block.dense].name,
                    "activation": block.activation,
                    "units": int(kernels[i].shape[-1]),
                    "gradient_norm": float(np.linalg.norm(grad)),
                    "weight_norm": weight_norm,
                    "update_ratio": update,
                    "activation_mean": float(np.mean(act)),
                    "activation_std": float(np.std(act)),
                    "saturated_fraction": saturated_fraction(act, block.activation),
                    "dead_fraction": dead_fraction(act, block.activation),
                }
            )
        self.previous = kernels
        raw = {
            "activations": [a.numpy() for a in activations],
            "gradients": [g.numpy() for g in gradients],
        }
        return rows, raw
