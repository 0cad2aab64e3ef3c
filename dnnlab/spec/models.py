"""The whole spec (`Spec`) and `resolve`: what the dataset decides (output layer, loss,
metrics). Its sections live in `data`, `model` and `training`.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
)

from dnnlab.spec.base import NAME_PATTERN, Strict
from dnnlab.spec.data import ColumnSpec, DataSpec
from dnnlab.spec.model import (
    CompactModel,
    DenseLayer,
    ModelSpec,
    NamedInitializer,
    PlainActivation,
    recommended_initializer,
)
from dnnlab.spec.training import Training

MAX_SEED = 2**32 - 1


class Spec(Strict):
    name: str = Field("run", pattern=NAME_PATTERN)
    seed: int = Field(42, ge=0, le=MAX_SEED, description="at most 2**32 - 1, the range NumPy seeds take")
    data: DataSpec
    model: ModelSpec
    training: Training = Field(default_factory=Training)


# --- what the dataset decides --------------------------------------------------------------


def resolve(
    spec: Spec, task: str, num_classes: int | None, columns: dict[str, dict[str, Any]] | None = None
) -> Spec:
    """Fill in what the dataset decides: output units and activation, loss, metrics, and for a
    table every feature column's type and missing policy (`columns`, as inferred).

    Classification gets a softmax output with one unit per class, sparse categorical
    cross-entropy and accuracy; regression a single linear unit and mse.
    """
    spec = spec.model_copy(deep=True)
    if columns is not None:
        spec.data.dataset.columns = {name: ColumnSpec(**rule) for name, rule in columns.items()}
    if task == "autoencoder":
        return _resolve_autoencoder(spec)
    classification = task == "classification"
    units = num_classes if classification else 1
    activation = PlainActivation(type="softmax" if classification else "linear")
    model = spec.model
    if isinstance(model, CompactModel):
        if model.output.units is None:
            model.output.units = units
        if model.output.activation is None:
            model.output.activation = activation
        if model.output.initializer is None:
            model.output.initializer = NamedInitializer(
                type=recommended_initializer(model.output.activation.type)
            )
    else:
        for layer in model.layers:
            if isinstance(layer, DenseLayer):
                if layer.activation is None:
                    layer.activation = PlainActivation(type="linear")
                if layer.initializer is None:
                    layer.initializer = NamedInitializer(type="glorot_uniform")  # Keras's default
    training = spec.training
    if training.loss is None:
        training.loss = "sparse_categorical_crossentropy" if classification else "mse"
    if training.metrics is None:
        training.metrics = ["accuracy"] if classification else ["mae"]
    if spec.data.task is None:
        spec.data.task = task
    return spec


def _resolve_autoencoder(spec: Spec) -> Spec:
    """An autoencoder reconstructs its scaled input: in [0, 1] (scaling `unit`) a sigmoid output
    and binary cross-entropy, else a linear output and mse (Géron, Hands-On Machine Learning,
    ch. 17). The output's width is the input's, known when the model is built."""
    unit = spec.data.scaling == "unit"
    model = spec.model
    if isinstance(model, CompactModel):
        if model.output.activation is None:
            model.output.activation = PlainActivation(type="sigmoid" if unit else "linear")
        if model.output.initializer is None:
            model.output.initializer = NamedInitializer(type="glorot_uniform")
    training = spec.training
    if training.loss is None:
        training.loss = "binary_crossentropy" if unit else "mse"
    if training.metrics is None:
        training.metrics = ["mse"] if unit else ["mae"]
    spec.data.task = "autoencoder"
    return spec
