"""The `model:` section: initializers, activations, normalization, regularizers, constraints,
dropout, the compact and explicit forms, the output layer and transfer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from dnnlab.spec.base import Strict, Variants, shorthand, type_names

# --- initializers --------------------------------------------------------------------------


class NamedInitializer(Strict):
    type: Literal[
        "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform"
    ]


class VarianceScaling(Strict):
    type: Literal["variance_scaling"]
    scale: float = Field(1.0, gt=0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["normal", "truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"


class RandomNormal(Strict):
    """Weights drawn from N(mean, stddev^2), whatever the layer's fan-in. The default stddev is
    Keras's 0.05; the "random initialization" that vanishes in deep sigmoid stacks (Géron, ch. 11) is
    N(0, 1): set stddev: 1.0."""

    type: Literal["random_normal"]
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0)


class TruncatedNormal(Strict):
    """N(mean, stddev^2) redrawn beyond two standard deviations."""

    type: Literal["truncated_normal"]
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0)


class RandomUniform(Strict):
    type: Literal["random_uniform"]
    minval: float = -0.05
    maxval: float = 0.05

    @model_validator(mode="after")
    def _ordered(self) -> RandomUniform:
        if self.minval >= self.maxval:
            raise ValueError(f"expected minval < maxval; received minval={self.minval}, maxval={self.maxval}")
        return self


Initializer = Variants(NamedInitializer, VarianceScaling, RandomNormal, TruncatedNormal, RandomUniform)


NAMED_INITIALIZERS = type_names(NamedInitializer)


INITIALIZER_NAMES = type_names(Initializer)


FIXED_SCALE_INITIALIZERS = type_names(Variants(RandomNormal, TruncatedNormal, RandomUniform))


# --- activations ---------------------------------------------------------------------------


class PlainActivation(Strict):
    type: Literal["sigmoid", "logistic", "tanh", "relu", "selu", "softmax", "linear"]


class LeakyReLU(Strict):
    type: Literal["leaky_relu"]
    alpha: float = Field(0.3, ge=0, description="slope for x < 0 (Keras's negative_slope)")


class RReLU(Strict):
    type: Literal["rrelu"]
    lower: float = Field(1 / 8, ge=0)
    upper: float = Field(1 / 3, ge=0)


class PReLU(Strict):
    type: Literal["prelu"]


class ELU(Strict):
    type: Literal["elu"]
    alpha: float = Field(1.0, gt=0)


Activation = Variants(PlainActivation, LeakyReLU, RReLU, PReLU, ELU)


PLAIN_ACTIVATIONS = type_names(PlainActivation)


ACTIVATION_NAMES = type_names(Activation)


RELU_FAMILY = frozenset({"relu", "leaky_relu", "rrelu", "prelu", "elu"})


def recommended_initializer(activation: str) -> str:
    """Géron's initialization table: He for ReLU and its variants, LeCun for SELU, else Glorot."""
    if activation in RELU_FAMILY:
        return "he_normal"
    if activation == "selu":
        return "lecun_normal"
    return "glorot_uniform"


# --- normalization, regularization, constraints, dropout ----------------------------------


class NoNormalization(Strict):
    type: Literal["none"]


class BatchNorm(Strict):
    type: Literal["batch_norm"]
    position: Literal["after", "before"] = Field(
        "after", description="after or before the activation of each hidden layer"
    )
    momentum: float = Field(0.99, gt=0, lt=1)
    epsilon: float = Field(0.001, gt=0)


Normalization = Variants(NoNormalization, BatchNorm)


class L1(Strict):
    type: Literal["l1"]
    factor: float = Field(0.01, ge=0)


class L2(Strict):
    type: Literal["l2"]
    factor: float = Field(0.01, ge=0)


class L1L2(Strict):
    type: Literal["l1_l2"]
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)


Regularizer = Variants(L1, L2, L1L2)


class MaxNorm(Strict):
    type: Literal["max_norm"]
    max_value: float = Field(2.0, gt=0)
    axis: int | list[int] = 0


Constraint = Variants(MaxNorm)


class Dropout(Strict):
    type: Literal["dropout", "alpha_dropout"] = "dropout"
    rate: float = Field(0.5, ge=0, lt=1, description="fraction of units dropped, in [0, 1)")
    where: Literal["all", "input", "hidden", "last"] = Field(
        "all",
        description="all: before every dense layer; input: on the inputs only; "
        "hidden: after every hidden layer; last: after the last hidden layer only",
    )


DropoutSpec = Annotated[Dropout, BeforeValidator(shorthand)]


# --- explicit layers -----------------------------------------------------------------------


class FlattenLayer(Strict):
    type: Literal["flatten"]


class DenseLayer(Strict):
    type: Literal["dense"]
    units: int = Field(gt=0)
    activation: Activation | None = None
    initializer: Initializer | None = None
    use_bias: bool = True
    regularizer: Regularizer | None = None
    constraint: Constraint | None = None
    bias_constraint: Constraint | None = None


class BatchNormLayer(Strict):
    type: Literal["batch_norm"]
    momentum: float = Field(0.99, gt=0, lt=1)
    epsilon: float = Field(0.001, gt=0)


class ActivationLayer(Strict):
    type: Literal["activation"]
    activation: Activation


class DropoutLayer(Strict):
    type: Literal["dropout", "alpha_dropout"]
    rate: float = Field(0.5, ge=0, lt=1, description="fraction of units dropped, in [0, 1)")


Layer = Variants(
    FlattenLayer,
    DenseLayer,
    BatchNormLayer,
    ActivationLayer,
    DropoutLayer,
    PlainActivation,
    LeakyReLU,
    RReLU,
    PReLU,
    ELU,
)


# --- models --------------------------------------------------------------------------------


class Output(Strict):
    units: int | None = Field(None, gt=0, description="inferred from the dataset when omitted")
    activation: Activation | None = None
    initializer: Initializer | None = None


class Transfer(Strict):
    """Reuse the trained layers of an earlier run (Géron's model_B_on_A)."""

    run: str = Field(description="run directory whose model.keras provides the weights")
    layers: int | None = Field(
        None, ge=1, description="leading dense layers to reuse; default: all but the output"
    )
    freeze_epochs: int = Field(
        0, ge=0, description="epochs with the reused layers frozen before they are unfrozen"
    )
    fine_tune_learning_rate: float | None = Field(
        None, gt=0, description="learning rate once the reused layers are unfrozen"
    )


class GaussianNoiseSpec(Strict):
    type: Literal["gaussian"]
    stddev: float = Field(0.1, gt=0)


class DropoutNoiseSpec(Strict):
    type: Literal["dropout"]
    rate: float = Field(0.2, gt=0, lt=1)


Noise = Variants(GaussianNoiseSpec, DropoutNoiseSpec)


class Autoencoder(Strict):
    """With `data.task: autoencoder`: the hidden stack is the encoder, a mirrored decoder
    reconstructs the input (Géron, Hands-On Machine Learning, ch. 17). With `training.pretrain`:
    the same settings for each hidden layer's one-layer autoencoder."""

    tied: bool = Field(False, description="decoder kernels are the transposes of the encoder's")
    noise: Noise | None = Field(None, description="denoising: noise on the inputs while training")


MAX_LAYERS = 1000  # Keras builds a deeper stack too slowly to be a useful experiment here


class CompactModel(Strict):
    """A stack of dense layers sharing one activation, initializer and regularization."""

    hidden: list[Annotated[int, Field(gt=0)]] = Field(min_length=0, max_length=MAX_LAYERS)
    activation: Activation = Field(default_factory=lambda: PlainActivation(type="relu"))
    initializer: Initializer | None = Field(
        None,
        description="default: the one paired with the activation: he_normal for the ReLU family, "
        "lecun_normal for SELU, else glorot_uniform (Géron, ch. 11)",
    )
    normalization: Normalization = Field(default_factory=lambda: NoNormalization(type="none"))
    input_normalization: Normalization = Field(default_factory=lambda: NoNormalization(type="none"))
    regularizer: Regularizer | None = None
    constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    dropout: DropoutSpec | None = None
    output: Output = Field(default_factory=Output)
    transfer: Transfer | None = None
    autoencoder: Autoencoder | None = Field(
        None, description="with data.task: autoencoder, or training.pretrain (each layer's autoencoder)"
    )

    @model_validator(mode="after")
    def _default_initializer(self) -> CompactModel:
        if self.initializer is None:
            self.initializer = NamedInitializer(type=recommended_initializer(self.activation.type))
        return self


class ExplicitModel(Strict):
    """A list of typed layers, for full control; the last layer is the output."""

    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)
    transfer: Transfer | None = None


def _model_form(value: Any) -> str:
    if isinstance(value, dict):
        return "explicit" if "layers" in value else "compact"
    return "explicit" if isinstance(value, ExplicitModel) else "compact"


ModelSpec = Annotated[
    Annotated[CompactModel, Tag("compact")] | Annotated[ExplicitModel, Tag("explicit")],
    Discriminator(_model_form),
]
