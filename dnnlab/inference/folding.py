"""An inference copy of a run's dense model: dropout removed, batch norm optionally folded into
the adjacent Dense layer, small weights optionally zeroed (`dnnlab export`).

At inference a batch norm is the per-unit affine map z -> s * z + t with
s = gamma / sqrt(moving_variance + epsilon) and t = beta - moving_mean * s. It folds:
- backwards into the Dense layer before it when nothing nonlinear sits between them (Géron's
  "before the activation": Dense without bias -> BN -> activation): W' = W * s (per output unit),
  b' = b * s + t;
- forwards into the next Dense layer's inputs when only dropout (identity at inference) sits
  between them (BN after the activation, or the input batch norm): W' = diag(s) W, b' = b + t W.
Anywhere else (a batch norm followed by an activation or a flatten before any Dense layer, or
after the last Dense layer) it cannot fold, and `FoldError` says which layer and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from dnnlab.errors import DnnlabError

IDENTITY_AT_INFERENCE = (keras.layers.Dropout, keras.layers.AlphaDropout, keras.layers.GaussianNoise)


class FoldError(DnnlabError):
    """A batch norm that no Dense layer can absorb."""


@dataclass
class _Dense:
    name: str
    kernel: np.ndarray  # float64 while folding
    bias: np.ndarray
    activation: str
    folded: list[str]


@dataclass
class _Pending:
    name: str
    scale: np.ndarray
    shift: np.ndarray


def inference_copy(model: keras.Model, fold_batch_norm: bool = False) -> tuple[keras.Model, list[str]]:
    """A new Sequential computing `model(x, training=False)` without its dropout layers; with
    `fold_batch_norm`, without its batch norms too. Returns it and the folded layers' names."""
    stack: list[_Dense | keras.layers.Layer] = []
    pending: _Pending | None = None
    folded: list[str] = []
    for layer in model.layers:
        if isinstance(layer, IDENTITY_AT_INFERENCE):
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and fold_batch_norm:
            scale, shift = _affine(layer)
            previous = stack[-1] if stack else None
            if pending is not None:  # two batch norms in a row compose into one affine map
                pending = _Pending(pending.name, pending.scale * scale, pending.shift * scale + shift)
            elif isinstance(previous, _Dense) and previous.activation == "linear":
                previous.kernel = previous.kernel * scale
                previous.bias = previous.bias * scale + shift
                previous.folded.append(layer.name)
            else:
                pending = _Pending(layer.name, scale, shift)
            folded.append(layer.name)
        elif isinstance(layer, keras.layers.Dense):
            dense = _dense(layer)
            if pending is not None:
                dense.bias = dense.bias + pending.shift @ dense.kernel
                dense.kernel = pending.scale[:, None] * dense.kernel
                dense.folded.append(pending.name)
                pending = None
            stack.append(dense)
        else:
            if pending is not None:
                raise FoldError(_cannot_fold(pending.name, f"{layer.name} ({type(layer).__name__})"))
            stack.append(layer)
    if pending is not None:
        raise FoldError(_cannot_fold(pending.name, "the end of the model"))
    return _rebuild(model, stack), folded


def _cannot_fold(name: str, what: str) -> str:
    return (
        f"--fold-batch-norm: cannot fold {name}: it follows a nonlinearity (or no Dense layer) and "
        f"{what} comes before any Dense layer that could take it; folding needs a Dense layer "
        "right before the batch norm with no activation between them, or right after it with "
        "only dropout between them. Export without --fold-batch-norm"
    )


def _affine(layer: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)
    rank = len(layer.input.shape) if hasattr(layer, "input") else 2
    if axis not in (-1, [-1], rank - 1, [rank - 1]) or rank != 2:
        raise FoldError(
            f"--fold-batch-norm: cannot fold {layer.name}: it normalizes axis {axis} of a rank-{rank} "
            "input; only a batch norm over the features of a flat (batch, features) input folds"
        )
    variance = np.asarray(layer.moving_variance, dtype=np.float64)
    mean = np.asarray(layer.moving_mean, dtype=np.float64)
    gamma = np.asarray(layer.gamma, dtype=np.float64) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta, dtype=np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - mean * scale


def _dense(layer: keras.layers.Dense) -> _Dense:
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    bias = np.asarray(layer.bias, dtype=np.float64) if layer.use_bias else np.zeros(kernel.shape[1])
    activation = keras.activations.serialize(layer.activation)
    name = activation if isinstance(activation, str) else activation.get("config", {}).get("name", "")
    return _Dense(layer.name, kernel, bias, name or "custom", [])


def _rebuild(model: keras.Model, stack: list) -> keras.Model:
    layers, weights = [], []
    for item in stack:
        if isinstance(item, _Dense):
            source = model.get_layer(item.name)
            config = {**source.get_config(), "use_bias": True, "kernel_regularizer": None}
            config.update(kernel_constraint=None, bias_constraint=None, bias_regularizer=None)
            layers.append(keras.layers.Dense.from_config(config))
            weights.append([item.kernel.astype("float32"), item.bias.astype("float32")])
        else:
            layers.append(type(item).from_config(item.get_config()))
            weights.append(item.get_weights())
    copy = keras.Sequential([keras.Input(shape=model.input_shape[1:]), *layers], name=model.name)
    for layer, values in zip(layers, weights, strict=True):
        layer.set_weights(values)
    return copy


def prune(model: keras.Model, threshold: float) -> tuple[int, int]:
    """Zero every Dense kernel weight with |w| < threshold, in place; returns (zeros, weights)."""
    zeros = total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel = np.asarray(layer.kernel)
            kernel = np.where(np.abs(kernel) < threshold, np.zeros_like(kernel), kernel)
            layer.kernel.assign(kernel)
            zeros += int(np.count_nonzero(kernel == 0))
            total += kernel.size
    return zeros, total
