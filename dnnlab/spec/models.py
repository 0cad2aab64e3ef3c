"""The YAML spec as pydantic v2 models: the vocabulary and every field's rule.

Every model forbids unknown keys; a variant is chosen by its `type`, and a bare string is
shorthand for `{type: NAME}`. Defaults follow Keras unless the notes give a better one, and
`resolve` fills in what the dataset decides so a run directory records what ran. The name
lists (ACTIVATION_NAMES, OPTIMIZER_NAMES, ...) are read off the unions, so a new variant is
named in one place only.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dnnlab.spec.keras_names import LOSS_NAMES, METRIC_NAMES
from dnnlab.spec.wording import did_you_mean, members, type_tags

# A run's or sweep's name becomes a folder name inside the runs folder: no separators, no dot
# or dash first (no `..`, no option look-alike), and short enough for any file system.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, with a did-you-mean; no float may be
    inf or nan (YAML's `.inf`, or `1e999`, which pydantic would read as inf)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _shorthand(value: Any) -> Any:
    """`relu` means `{type: relu}`."""
    return {"type": value} if isinstance(value, str) else value


def Variants(*models: type[BaseModel]) -> Any:
    """A union of models chosen by their `type` field, accepting the string shorthand."""
    return Annotated[Union[models], Field(discriminator="type"), BeforeValidator(_shorthand)]  # noqa: UP007


def type_names(annotation: Any) -> tuple[str, ...]:
    """Every `type` a union of models accepts, in declaration order."""
    return tuple(tag for model in members(annotation) for tag in type_tags(model))


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
    """Weights drawn from N(mean, stddev^2), whatever the layer's fan-in (the notes' "random init")."""

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
    """The notes' initialization table: He for ReLU and its variants, LeCun for SELU, else Glorot."""
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


DropoutSpec = Annotated[Dropout, BeforeValidator(_shorthand)]


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
    """Reuse the trained layers of an earlier run (the notes' model_B_on_A)."""

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


MAX_LAYERS = 1000  # Keras builds a deeper stack too slowly to be a useful experiment here


class CompactModel(Strict):
    """A stack of dense layers sharing one activation, initializer and regularization."""

    hidden: list[Annotated[int, Field(gt=0)]] = Field(min_length=0, max_length=MAX_LAYERS)
    activation: Activation = Field(default_factory=lambda: PlainActivation(type="relu"))
    initializer: Initializer | None = Field(
        None, description="default: the one the notes pair with the activation"
    )
    normalization: Normalization = Field(default_factory=lambda: NoNormalization(type="none"))
    input_normalization: Normalization = Field(default_factory=lambda: NoNormalization(type="none"))
    regularizer: Regularizer | None = None
    constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    dropout: DropoutSpec | None = None
    output: Output = Field(default_factory=Output)
    transfer: Transfer | None = None

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


# --- data ----------------------------------------------------------------------------------

KerasDataset = Literal["mnist", "fashion_mnist", "cifar10", "cifar100"]
SklearnDataset = Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]
KERAS_DATASETS: tuple[str, ...] = typing.get_args(KerasDataset)
SKLEARN_DATASETS: tuple[str, ...] = typing.get_args(SklearnDataset)
NAMED_DATASETS = KERAS_DATASETS + SKLEARN_DATASETS


class NpzSource(Strict):
    type: Literal["npz"]
    path: str = Field(description="file with x_train, y_train and optionally x_test, y_test")


class CsvSource(Strict):
    type: Literal["csv"]
    path: str
    target: str = Field(description="name of the label column")


class SyntheticSource(Strict):
    type: Literal["synthetic"]
    shape: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [28, 28])
    classes: int = Field(10, ge=2)
    train: int = Field(1000, gt=0)
    test: int = Field(200, ge=0)
    task: Literal["classification", "regression"] = "classification"


FileSource = Annotated[NpzSource | CsvSource | SyntheticSource, Field(discriminator="type")]


def _named_dataset(value: str) -> str:
    if value not in NAMED_DATASETS:
        raise PydanticCustomError(
            "unknown_dataset",
            "unknown dataset '{value}'{hint}; expected one of: {allowed}, "
            "or a mapping with type npz, csv or synthetic",
            {
                "value": value if len(value) <= 60 else value[:57] + "...",
                "hint": did_you_mean(value, NAMED_DATASETS),
                "allowed": ", ".join(NAMED_DATASETS),
            },
        )
    return value


class DataSpec(Strict):
    dataset: Annotated[
        Annotated[str, Tag("named")] | Annotated[FileSource, Tag("file")],
        Discriminator(lambda v: "named" if isinstance(v, str) else "file"),
    ]
    validation: Annotated[int, Field(ge=0)] | Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="int: the first N training rows; float in (0, 1): that fraction"
    )
    test: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="test fraction for sources that ship no test split"
    )
    scaling: Literal["none", "unit", "standardize"] = "standardize"
    task: Literal["classification", "regression"] | None = None
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="keep only these classes, relabelled 0..k-1"
    )
    train_size: int | None = Field(None, gt=0, description="keep the first N training rows")
    split_seed: int = Field(
        42,
        ge=0,
        description="draws which rows are held out for test (and synthetic data); independent of "
        "`seed`, which draws initialization, dropout masks and data order, so runs that differ only "
        "in `seed` see the same validation and test rows and the same scaling statistics",
    )

    @field_validator("dataset", mode="before")
    @classmethod
    def _check_named(cls, value: Any) -> Any:
        return _named_dataset(value) if isinstance(value, str) else value


# --- training ------------------------------------------------------------------------------


class _Optimizer(Strict):
    learning_rate: float = Field(0.001, gt=0)
    clipvalue: float | None = Field(None, gt=0)
    clipnorm: float | None = Field(None, gt=0)
    global_clipnorm: float | None = Field(None, gt=0)


class SGD(_Optimizer):
    type: Literal["sgd"]
    learning_rate: float = Field(0.01, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdaGrad(_Optimizer):
    type: Literal["adagrad"]
    initial_accumulator_value: float = Field(0.1, ge=0)
    epsilon: float = Field(1e-7, gt=0)


class RMSProp(_Optimizer):
    type: Literal["rmsprop"]
    rho: float = Field(0.9, gt=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class Adam(_Optimizer):
    type: Literal["adam", "adamax", "nadam"]
    beta_1: float = Field(0.9, gt=0, lt=1)
    beta_2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class AdamW(_Optimizer):
    type: Literal["adamw"]
    weight_decay: float = Field(0.004, ge=0)
    beta_1: float = Field(0.9, gt=0, lt=1)
    beta_2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class Ftrl(_Optimizer):
    type: Literal["ftrl"]
    learning_rate_power: float = Field(-0.5, le=0)
    initial_accumulator_value: float = Field(0.1, ge=0)
    l1_regularization_strength: float = Field(0.0, ge=0)
    l2_regularization_strength: float = Field(0.0, ge=0)


Optimizer = Variants(SGD, AdaGrad, RMSProp, Adam, AdamW, Ftrl)
OPTIMIZER_NAMES = type_names(Optimizer)

Unit = Literal["epoch", "step"]


class NoSchedule(Strict):
    type: Literal["none"]


class PowerSchedule(Strict):
    """lr0 / (1 + t/s)^c"""

    type: Literal["power"]
    s: float = Field(20, gt=0)
    c: float = Field(1.0, gt=0)
    unit: Unit = "epoch"


class ExponentialSchedule(Strict):
    """lr0 * base^(t/s)"""

    type: Literal["exponential"]
    s: float = Field(20, gt=0)
    base: float = Field(0.1, gt=0)
    unit: Unit = "epoch"


class PiecewiseSchedule(Strict):
    """values[i] while t < boundaries[i]; values[-1] after the last boundary"""

    type: Literal["piecewise"]
    boundaries: list[int]
    values: list[Annotated[float, Field(gt=0)]]
    unit: Unit = "epoch"


class PlateauSchedule(Strict):
    """Performance scheduling: multiply lr by `factor` when `monitor` stops improving."""

    type: Literal["plateau"]
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(5, ge=0)
    monitor: str = "val_loss"
    min_delta: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class OneCycleSchedule(Strict):
    """Smith's 1cycle: lr up from start_lr to max_lr over the first half, down to start_lr
    over the second, then to final_lr in the last few percent; momentum the opposite way."""

    type: Literal["one_cycle"]
    max_lr: float = Field(gt=0)
    start_lr: float | None = Field(None, gt=0, description="default: max_lr / 10")
    final_lr: float | None = Field(None, gt=0, description="default: start_lr / 1000")
    last_fraction: float = Field(0.1, ge=0, lt=1, description="share of training for the final drop")
    max_momentum: float = Field(0.95, ge=0, lt=1)
    min_momentum: float = Field(0.85, ge=0, lt=1)
    unit: Unit = "step"


Schedule = Variants(
    NoSchedule, PowerSchedule, ExponentialSchedule, PiecewiseSchedule, PlateauSchedule, OneCycleSchedule
)


SCHEDULE_NAMES = type_names(Schedule)


class EarlyStopping(Strict):
    monitor: str = "val_loss"
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = True


class Diagnostics(Strict):
    """Per-layer gradient and activation statistics during training (layers.csv, TensorBoard)."""

    every: int = Field(1, ge=1, description="measure every N epochs (or steps), and at initialization")
    unit: Unit = "epoch"
    probe_size: int = Field(256, ge=1, description="rows of the fixed, seeded probe batch (training split)")
    histograms: bool = Field(True, description="also write activation and gradient histograms to TensorBoard")


class MlflowTracking(Strict):
    """Log the run to MLflow while it trains (needs the dnnlab[mlflow] extra)."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store")
    experiment: str = Field("dnnlab", description="MLflow experiment name")


class Training(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    loss: Literal[LOSS_NAMES] | None = Field(None, description="inferred from the task when omitted")
    metrics: list[Literal[METRIC_NAMES]] | None = Field(
        None, description="default: [accuracy] for classification, [mae] for regression"
    )
    monitor: str = Field("val_loss", description="metric that picks checkpoints/best.keras")
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="nadam"))
    schedule: Schedule = Field(default_factory=lambda: NoSchedule(type="none"))
    early_stopping: EarlyStopping | None = None
    deterministic: bool = Field(True, description="seed everything and enable op determinism")
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="batches per compiled call; auto: a few hundred, within one epoch"
    )
    intra_op_threads: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        "auto",
        description="threads inside one TensorFlow op; auto: see dnnlab/training/execution.py; "
        "0: TensorFlow's default (all cores)",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA; auto: on for runs of at least 5,000 steps without rrelu"
    )
    diagnostics: Diagnostics | None = Field(None, description="per-layer statistics: see `dnnlab diagnose`")
    mlflow: MlflowTracking | None = Field(None, description="log live to MLflow: see `dnnlab mlflow-log`")


MAX_SEED = 2**32 - 1


class Spec(Strict):
    name: str = Field("run", pattern=NAME_PATTERN)
    seed: int = Field(42, ge=0, le=MAX_SEED, description="at most 2**32 - 1, the range NumPy seeds take")
    data: DataSpec
    model: ModelSpec
    training: Training = Field(default_factory=Training)


# --- what the dataset decides --------------------------------------------------------------


def resolve(spec: Spec, task: str, num_classes: int | None) -> Spec:
    """Fill in what the dataset decides: output units and activation, loss, metrics.

    Classification gets a softmax output with one unit per class, sparse categorical
    cross-entropy and accuracy; regression a single linear unit and mse.
    """
    spec = spec.model_copy(deep=True)
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
