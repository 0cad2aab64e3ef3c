"""Spec -> keras.Model. One registry per part; Keras's own objects wherever Keras has one."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from dnnlab.errors import ModelFileError
from dnnlab.model.layers import DenseTranspose, RReLU, SeededAlphaDropout, SeededDropout, tie
from dnnlab.spec.model import (
    ActivationLayer,
    BatchNormLayer,
    CompactModel,
    DenseLayer,
    DropoutLayer,
    ExplicitModel,
    FlattenLayer,
)
from dnnlab.spec.models import Spec


def get(registry: dict[str, Callable], name: str, part: str) -> Callable:
    """Look a name up in a registry; an unknown name lists the valid ones."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"Unknown {part} {name!r}. Expected one of: {', '.join(registry)}") from None


INITIALIZERS: dict[str, Callable[[Any], keras.initializers.Initializer]] = {
    "glorot_normal": lambda s: keras.initializers.GlorotNormal(),
    "glorot_uniform": lambda s: keras.initializers.GlorotUniform(),
    "he_normal": lambda s: keras.initializers.HeNormal(),
    "he_uniform": lambda s: keras.initializers.HeUniform(),
    "lecun_normal": lambda s: keras.initializers.LecunNormal(),
    "lecun_uniform": lambda s: keras.initializers.LecunUniform(),
    "variance_scaling": lambda s: keras.initializers.VarianceScaling(
        scale=s.scale, mode=s.mode, distribution=s.distribution
    ),
    "random_normal": lambda s: keras.initializers.RandomNormal(mean=s.mean, stddev=s.stddev),
    "truncated_normal": lambda s: keras.initializers.TruncatedNormal(mean=s.mean, stddev=s.stddev),
    "random_uniform": lambda s: keras.initializers.RandomUniform(minval=s.minval, maxval=s.maxval),
}

REGULARIZERS: dict[str, Callable[[Any], keras.regularizers.Regularizer]] = {
    "l1": lambda s: keras.regularizers.L1(s.factor),
    "l2": lambda s: keras.regularizers.L2(s.factor),
    "l1_l2": lambda s: keras.regularizers.L1L2(l1=s.l1, l2=s.l2),
}

CONSTRAINTS: dict[str, Callable[[Any], keras.constraints.Constraint]] = {
    "max_norm": lambda s: keras.constraints.MaxNorm(max_value=s.max_value, axis=s.axis),
}

# Activations Keras applies as a function inside Dense (no layer, no parameters).
FUNCTION_ACTIVATIONS = {
    "sigmoid": "sigmoid",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "selu": "selu",
    "softmax": "softmax",
    "linear": "linear",
}

ACTIVATION_LAYERS: dict[str, Callable[[Any, str], keras.layers.Layer]] = {
    **{
        name: (lambda s, layer_name, fn=fn: keras.layers.Activation(fn, name=layer_name))
        for name, fn in FUNCTION_ACTIVATIONS.items()
    },
    "leaky_relu": lambda s, n: keras.layers.LeakyReLU(negative_slope=s.alpha, name=n),
    "rrelu": lambda s, n: RReLU(lower=s.lower, upper=s.upper, name=n),
    "prelu": lambda s, n: keras.layers.PReLU(name=n),
    "elu": lambda s, n: keras.layers.ELU(alpha=s.alpha, name=n),
}

# dnnlab's subclasses of Keras's layers: the same distributions, with masks XLA compiles well.
DROPOUTS: dict[str, Callable[[float, str], keras.layers.Layer]] = {
    "dropout": lambda rate, n: SeededDropout(rate, name=n),
    "alpha_dropout": lambda rate, n: SeededAlphaDropout(rate, name=n),
}


def make(registry: dict[str, Callable], spec: Any, part: str) -> Any:
    """Build a Keras object from a typed spec, or None when the spec is None."""
    if spec is None:
        return None
    return get(registry, spec.type, part)(spec)


def inline_activation(spec: Any) -> str | None:
    """The Keras name when the activation can run inside Dense, else None (needs its own layer)."""
    if spec.type in FUNCTION_ACTIVATIONS:
        return FUNCTION_ACTIVATIONS[spec.type]
    if spec.type == "elu" and spec.alpha == 1.0:
        return "elu"
    return None


def activation_layer(spec: Any, name: str) -> keras.layers.Layer:
    return get(ACTIVATION_LAYERS, spec.type, "activation")(spec, name)


def dense(units: int, name: str, *, activation: str | None, initializer, use_bias=True, source=None):
    """A Dense layer; `source` (a model or layer spec) supplies regularizer and constraints."""
    return keras.layers.Dense(
        units,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=make(INITIALIZERS, initializer, "initializer") or "glorot_uniform",
        kernel_regularizer=make(REGULARIZERS, getattr(source, "regularizer", None), "regularizer"),
        kernel_constraint=make(CONSTRAINTS, getattr(source, "constraint", None), "constraint"),
        bias_constraint=make(CONSTRAINTS, getattr(source, "bias_constraint", None), "constraint"),
        name=name,
    )


def batch_norm(spec: Any, name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=spec.momentum, epsilon=spec.epsilon, name=name)


def compact_layers(model: CompactModel, input_rank: int) -> list[keras.layers.Layer]:
    """Géron's dense stack: [flatten] [input BN] [dropout] (dense act [BN] [dropout])* output."""
    stack = input_layers(model, input_rank)
    stack += hidden_layers(model, "dense", model.hidden)
    out = model.output
    inline = inline_activation(out.activation)
    stack.append(dense(out.units, "output", activation=inline, initializer=out.initializer))
    if inline is None:
        stack.append(activation_layer(out.activation, "output_activation"))
    return stack


def input_layers(model: CompactModel, input_rank: int) -> list[keras.layers.Layer]:
    stack: list[keras.layers.Layer] = []
    if input_rank > 1:
        stack.append(keras.layers.Flatten(name="flatten"))
    if model.input_normalization.type == "batch_norm":
        stack.append(batch_norm(model.input_normalization, "input_batch_norm"))
    drop = model.dropout
    if drop and drop.rate > 0 and drop.where in ("all", "input"):
        stack.append(DROPOUTS[drop.type](drop.rate, "input_dropout"))
    return stack


def hidden_layers(
    model: CompactModel, prefix: str, widths: list[int], tied: list[keras.layers.Dense] | None = None
) -> list[keras.layers.Layer]:
    """(dense act [BN] [dropout]) per width, named `{prefix}_1`...; with `tied`, each dense layer
    is the transpose of the matching encoder layer (an autoencoder's tied decoder)."""
    stack: list[keras.layers.Layer] = []
    drop = model.dropout
    norm = model.normalization
    last = len(widths)
    tag = "" if prefix == "dense" else f"{prefix}_"
    for index, units in enumerate(widths, start=1):
        bn_before = norm.type == "batch_norm" and norm.position == "before"
        inline = None if bn_before else inline_activation(model.activation)
        name = f"{prefix}_{index}"
        if tied is not None:
            stack.append(tied_layer(units, name, inline, tied[index - 1]))
        else:
            stack.append(
                dense(
                    units,
                    name,
                    activation=inline,
                    initializer=model.initializer,
                    use_bias=not bn_before,  # batch norm's beta replaces the bias
                    source=model,
                )
            )
        if bn_before:
            stack.append(batch_norm(norm, f"{tag}batch_norm_{index}"))
        if inline is None:
            stack.append(activation_layer(model.activation, f"{tag}{model.activation.type}_{index}"))
        if norm.type == "batch_norm" and not bn_before:
            stack.append(batch_norm(norm, f"{tag}batch_norm_{index}"))
        if (
            drop
            and drop.rate > 0
            and (drop.where in ("all", "hidden") or (drop.where == "last" and index == last))
        ):
            stack.append(DROPOUTS[drop.type](drop.rate, f"{tag}dropout_{index}"))
    return stack


def tied_layer(units: int, name: str, activation: str | None, encoder: keras.layers.Dense) -> DenseTranspose:
    layer = DenseTranspose(units, tied_to=encoder.name, activation=activation, name=name)
    layer.attach(encoder)
    return layer


NOISE: dict[str, Callable[[Any], keras.layers.Layer]] = {
    "gaussian": lambda s: keras.layers.GaussianNoise(s.stddev, name="noise"),
    "dropout": lambda s: SeededDropout(s.rate, name="noise"),
}


def autoencoder_layers(model: CompactModel, input_shape: tuple[int, ...]) -> list[keras.layers.Layer]:
    """Géron's stacked autoencoder (Hands-On Machine Learning, ch. 17): [noise] the hidden stack
    as the encoder, then a decoder of the widths in reverse ending at the input's width (with
    `tied`, each decoder kernel the transpose of its encoder's), reshaped to the input's shape.
    The noise layers act in training only."""
    settings = model.autoencoder
    stack = input_layers(model, len(input_shape))
    if settings is not None and settings.noise is not None:
        stack.append(make(NOISE, settings.noise, "noise"))
    encoder = hidden_layers(model, "dense", model.hidden)
    stack += encoder
    widths = [*reversed(model.hidden[:-1])]
    encoder_dense = [layer for layer in encoder if isinstance(layer, keras.layers.Dense)]
    tied = settings is not None and settings.tied
    stack += hidden_layers(model, "decoder", widths, list(reversed(encoder_dense[1:])) if tied else None)
    out = model.output
    inline = inline_activation(out.activation)
    width = math.prod(input_shape)
    if tied:
        stack.append(tied_layer(width, "output", inline, encoder_dense[0]))
    else:
        stack.append(dense(width, "output", activation=inline, initializer=out.initializer))
    if inline is None:
        stack.append(activation_layer(out.activation, "output_activation"))
    if len(input_shape) > 1:
        stack.append(keras.layers.Reshape(tuple(input_shape), name="output_reshape"))
    return stack


def explicit_layers(model: ExplicitModel) -> list[keras.layers.Layer]:
    """One Keras layer per spec layer (two for a dense layer with a parametric activation)."""
    layers: list[keras.layers.Layer] = []
    last = len(model.layers) - 1
    for index, spec in enumerate(model.layers):
        name = "output" if index == last else f"{spec.type}_{index}"
        if isinstance(spec, FlattenLayer):
            layers.append(keras.layers.Flatten(name=name))
        elif isinstance(spec, DenseLayer):
            inline = inline_activation(spec.activation) if spec.activation else None
            layers.append(
                dense(
                    spec.units,
                    name,
                    activation=inline,
                    initializer=spec.initializer,
                    use_bias=spec.use_bias,
                    source=spec,
                )
            )
            if spec.activation is not None and inline is None:
                layers.append(activation_layer(spec.activation, f"{name}_activation"))
        elif isinstance(spec, BatchNormLayer):
            layers.append(batch_norm(spec, name))
        elif isinstance(spec, DropoutLayer):
            layers.append(DROPOUTS[spec.type](spec.rate, name))
        elif isinstance(spec, ActivationLayer):
            layers.append(activation_layer(spec.activation, name))
        else:  # an activation name used as a layer
            layers.append(activation_layer(spec, name))
    return layers


def build_model(spec: Spec, input_shape: tuple[int, ...]) -> keras.Model:
    """The uncompiled model for a resolved spec (see `dnnlab.spec.models.resolve`)."""
    model_spec = spec.model
    if spec.data.task == "autoencoder":
        layers = autoencoder_layers(model_spec, tuple(input_shape))
    elif isinstance(model_spec, CompactModel):
        layers = compact_layers(model_spec, len(input_shape))
    else:
        layers = explicit_layers(model_spec)
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *layers], name=spec.name)


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    non_trainable: int


def count_params(model: keras.Model) -> ParamCounts:
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    non_trainable = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return ParamCounts(trainable + non_trainable, trainable, non_trainable)


def describe_layers(model: keras.Model) -> list[dict[str, Any]]:
    """Name, class, output shape and parameter count of each layer (for `summary --json`)."""
    return [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [None if d is None else int(d) for d in layer.output.shape],
            "params": int(layer.count_params()),
        }
        for layer in model.layers
    ]


def summary_text(model: keras.Model) -> str:
    """A plain-text summary: one line per layer, then the parameter counts."""
    rows = [("Layer", "Type", "Output shape", "Params")]
    rows += [
        (d["name"], d["type"], str(tuple(d["output_shape"])).replace("None", "None"), f"{d['params']:,}")
        for d in describe_layers(model)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    counts = count_params(model)
    lines += [
        "",
        f"Total params: {counts.total:,}",
        f"Trainable params: {counts.trainable:,}",
        f"Non-trainable params: {counts.non_trainable:,}",
    ]
    return "\n".join(lines) + "\n"


def load_model(path, compile: bool = True) -> keras.Model:
    """Load a dnnlab `.keras` file: registers dnnlab's custom layers and schedules first. A file
    Keras refuses (damaged, truncated, not a model, unsafe) is a one-line ModelFileError."""
    import dnnlab.model.optimizers  # noqa: F401  (registers the schedule and optimizer classes)

    try:
        return tie(keras.models.load_model(path, compile=compile))
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(path).is_file() and reason.startswith("File not found"):
            reason = "not a .keras zip archive; damaged or truncated"  # Keras says "not found" for both
        raise ModelFileError(f"{path}: Keras cannot load this model file ({reason})") from None
