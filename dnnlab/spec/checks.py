"""Rules that span several fields of a spec: errors that stop a run, and Géron's advice.

Each rule is a small `check_*` function taking the spec and returning findings with the dotted
key they concern. Field-level rules live on the pydantic models in `models.py`. The same
advice for several layers is reported once, naming every layer.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from dnnlab.errors import ConfigError
from dnnlab.spec.keras_names import (
    REGRESSION_LOSSES,
    REGRESSION_METRICS,
    SPARSE_LABEL_LOSSES,
    SPARSE_LABEL_METRICS,
)
from dnnlab.spec.model import RELU_FAMILY, CompactModel, DenseLayer, ExplicitModel, recommended_initializer
from dnnlab.spec.models import Spec
from dnnlab.spec.phases import hidden_dense
from dnnlab.spec.wording import did_you_mean, short


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    keys: tuple[str, ...]  # every dotted key the message applies to
    message: str

    @property
    def key(self) -> str:
        return ", ".join(self.keys)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def error(key: str, message: str) -> Finding:
    return Finding("error", (key,), message)


def warning(key: str, message: str) -> Finding:
    return Finding("warning", (key,), message)


def merged(findings: list[Finding]) -> list[Finding]:
    """One finding per level and message, naming all its keys in the order they came."""
    keys: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        keys.setdefault((finding.level, finding.message), []).extend(finding.keys)
    return [Finding(level, tuple(dict.fromkeys(k)), message) for (level, message), k in keys.items()]


GLOROT_FAMILY = {"sigmoid", "logistic", "tanh", "softmax", "linear"}
HE_INITS = {"he_normal", "he_uniform"}
GLOROT_INITS = {"glorot_normal", "glorot_uniform"}
LECUN_INITS = {"lecun_normal", "lecun_uniform"}


def _init_family(init) -> str | None:
    """The table row an initializer belongs to, judged by its variance (scale and mode)."""
    if init is None:
        return None
    if init.type in HE_INITS:
        return "he"
    if init.type in GLOROT_INITS:
        return "glorot"
    if init.type in LECUN_INITS:
        return "lecun"
    if init.type != "variance_scaling":
        return None  # a fixed scale (random_normal, ...) belongs to no row of the table
    if init.mode == "fan_in":
        return {1.0: "lecun", 2.0: "he"}.get(init.scale)
    if init.mode == "fan_avg" and init.scale == 1.0:
        return "glorot"
    if init.mode == "fan_avg" and init.scale == 2.0:
        return "he"  # Géron: He init with fan_avg, variance_scaling(scale=2, mode=fan_avg)
    return None


FAMILY_FOR = {"he": RELU_FAMILY, "lecun": {"selu"}, "glorot": GLOROT_FAMILY}


def _dense_layers(spec: Spec) -> Iterator[tuple[str, str, object]]:
    """(key, activation name, initializer) for each hidden dense layer."""
    model = spec.model
    if isinstance(model, CompactModel):
        for index in range(len(model.hidden)):
            yield f"model.hidden[{index}]", model.activation.type, model.initializer
    else:
        layers = model.layers
        for index, layer in enumerate(layers[:-1]):
            if isinstance(layer, DenseLayer):
                activation = _following_activation(layers, index)
                yield f"model.layers[{index}]", activation, layer.initializer


def _following_activation(layers, index: int) -> str:
    layer = layers[index]
    if layer.activation is not None and layer.activation.type != "linear":
        return layer.activation.type
    for nxt in layers[index + 1 :]:
        if isinstance(nxt, DenseLayer):
            break
        if nxt.type == "activation":
            return nxt.activation.type
        if nxt.type not in ("batch_norm", "dropout", "alpha_dropout", "flatten"):
            return nxt.type
    return "linear"


# --- errors --------------------------------------------------------------------------------


def check_single_clipping(spec: Spec) -> Iterator[Finding]:
    opt = spec.training.optimizer
    given = [n for n in ("clipvalue", "clipnorm", "global_clipnorm") if getattr(opt, n) is not None]
    if len(given) > 1:
        yield error(
            "training.optimizer",
            f"set only one of clipvalue, clipnorm, global_clipnorm; received {', '.join(given)}",
        )


def check_mlflow_installed(spec: Spec) -> Iterator[Finding]:
    if spec.training.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        yield error("training.mlflow", "needs MLflow, an optional extra: pip install 'dnnlab[mlflow]'")


def check_piecewise(spec: Spec) -> Iterator[Finding]:
    schedule = spec.training.schedule
    if schedule.type != "piecewise":
        return
    bounds = schedule.boundaries
    if any(b <= a for a, b in zip(bounds, bounds[1:])) or (bounds and bounds[0] <= 0):
        yield error(
            "training.schedule.boundaries",
            f"boundaries must be positive and strictly increasing; received {bounds}",
        )
    if len(schedule.values) != len(bounds) + 1:
        yield error(
            "training.schedule.values",
            f"needs one more value than boundaries ({len(bounds) + 1}); received {len(schedule.values)}",
        )


def check_rrelu_bounds(spec: Spec) -> Iterator[Finding]:
    for key, activation in _activations(spec):
        if activation.type == "rrelu" and activation.lower > activation.upper:
            yield error(key, f"rrelu lower ({activation.lower}) must be <= upper ({activation.upper})")


def _activations(spec: Spec) -> Iterator[tuple[str, object]]:
    model = spec.model
    if isinstance(model, CompactModel):
        yield "model.activation", model.activation
        if model.output.activation is not None:
            yield "model.output.activation", model.output.activation
        return
    for index, layer in enumerate(model.layers):
        key = f"model.layers[{index}]"
        if layer.type in ("dense", "activation") and layer.activation is not None:
            yield f"{key}.activation", layer.activation
        elif hasattr(layer, "type") and layer.type in ("rrelu", "leaky_relu", "elu", "prelu"):
            yield key, layer


def check_one_cycle(spec: Spec) -> Iterator[Finding]:
    schedule = spec.training.schedule
    if schedule.type == "one_cycle" and schedule.min_momentum > schedule.max_momentum:
        yield error("training.schedule", "min_momentum must be <= max_momentum")
    if schedule.type == "one_cycle" and schedule.start_lr and schedule.start_lr > schedule.max_lr:
        yield error("training.schedule.start_lr", "start_lr must be <= max_lr")


def check_explicit_output(spec: Spec) -> Iterator[Finding]:
    model = spec.model
    if isinstance(model, ExplicitModel) and not isinstance(model.layers[-1], DenseLayer):
        yield error(
            f"model.layers[{len(model.layers) - 1}]",
            f"the last layer is the output and must be dense; received {model.layers[-1].type}",
        )


def check_classes_unique(spec: Spec) -> Iterator[Finding]:
    classes = spec.data.classes
    if classes and len(set(classes)) != len(classes):
        yield error("data.classes", f"classes must be distinct; received {classes}")


def check_transfer(spec: Spec) -> Iterator[Finding]:
    transfer = spec.model.transfer
    if transfer and transfer.freeze_epochs >= spec.training.epochs:
        yield warning(
            "model.transfer.freeze_epochs",
            f"{transfer.freeze_epochs} >= training.epochs ({spec.training.epochs}): the reused "
            "layers are never unfrozen",
        )


def check_autoencoder(spec: Spec) -> Iterator[Finding]:
    """An autoencoder is a compact stack whose decoder mirrors it; its output width is the input's."""
    model, data = spec.model, spec.data
    autoencoder = data.task == "autoencoder"
    if not autoencoder:
        pretrain = spec.training.pretrain is not None
        if isinstance(model, CompactModel) and model.autoencoder is not None and not pretrain:
            yield error(
                "model.autoencoder",
                "applies only with data.task: autoencoder or training.pretrain (each layer's autoencoder)",
            )
        return
    if not isinstance(model, CompactModel):
        yield error("model.layers", "data.task: autoencoder needs the compact form (model.hidden: [...])")
        return
    if not model.hidden:
        yield error("model.hidden", "data.task: autoencoder needs at least one hidden layer (the code)")
    if model.output.units is not None:
        yield error(
            "model.output.units",
            f"{model.output.units}: an autoencoder's output is as wide as its input; leave it out",
        )
    if spec.training.loss == "sparse_categorical_crossentropy":
        yield error("training.loss", "an autoencoder reconstructs its input; use mse or binary_crossentropy")
    if data.classes is not None:
        yield error("data.classes", "an autoencoder reads no labels; leave data.classes out")


def check_pretrain(spec: Spec) -> Iterator[Finding]:
    """Greedy pretraining trains the hidden dense layers of a classifier or regressor, from its
    own initial weights."""
    if spec.training.pretrain is None:
        return
    if spec.data.task == "autoencoder":
        yield error(
            "training.pretrain",
            "applies to a classifier or regressor (its fine-tune needs labels), not data.task: autoencoder",
        )
    elif spec.model.transfer is not None:
        yield error(
            "training.pretrain",
            "cannot be combined with model.transfer (both decide the starting weights); use one",
        )
    elif not hidden_dense(spec):
        key = "model.hidden" if isinstance(spec.model, CompactModel) else "model.layers"
        yield error(key, "training.pretrain needs at least one hidden dense layer to pretrain")


def check_unlabeled(spec: Spec) -> Iterator[Finding]:
    if spec.data.unlabeled == "rest" and spec.data.train_size is None:
        yield error(
            "data.unlabeled",
            "rest means the training rows beyond data.train_size; set data.train_size (the labelled rows)",
        )


# --- advice from Géron's chapter (warnings) ---------------------------------------------


def check_initializer_matches_activation(spec: Spec) -> Iterator[Finding]:
    for key, activation, init in _dense_layers(spec):
        family = _init_family(init)
        if family is None or activation in FAMILY_FOR[family]:
            continue
        wanted = recommended_initializer(activation)
        if activation in RELU_FAMILY:
            why = "ReLU and its variants want He initialization"
        elif activation == "selu":
            why = "SELU wants LeCun initialization"
        else:
            why = "sigmoid, tanh and softmax want Glorot initialization"
        yield warning(f"{key}", f"{why} ({wanted}); received {init.type}")


def check_selu_self_normalization(spec: Spec) -> Iterator[Finding]:
    model = spec.model
    if not isinstance(model, CompactModel) or model.activation.type != "selu":
        if isinstance(model, ExplicitModel) and any(
            getattr(layer, "activation", None) is not None and layer.activation.type == "selu"
            for layer in model.layers
            if isinstance(layer, DenseLayer)
        ):
            yield warning(
                "model.layers",
                "SELU self-normalizes only in a plain stack of dense layers; the compact form "
                "(model.hidden) checks SELU's other conditions for self-normalization",
            )
        return
    why = "breaks SELU's self-normalization"
    if model.initializer is not None and _init_family(model.initializer) != "lecun":
        yield warning("model.initializer", f"SELU wants lecun_normal; {model.initializer.type} {why}")
    if spec.data.scaling != "standardize":
        yield warning("data.scaling", f"SELU wants standardized inputs; scaling {spec.data.scaling!r} {why}")
    if model.regularizer is not None:
        yield warning(
            "model.regularizer", f"l1/l2 regularization {why}; use alpha_dropout and early stopping"
        )
    if model.constraint is not None:
        yield warning("model.constraint", f"max-norm {why}")
    if model.normalization.type != "none" or model.input_normalization.type != "none":
        yield warning("model.normalization", f"batch norm {why}")
    if model.dropout is not None and model.dropout.type == "dropout":
        yield warning("model.dropout", f"plain dropout {why}; use {{type: alpha_dropout}}")


DEEP_SIGMOID_LAYERS = 5


def check_deep_sigmoid_stack(spec: Spec) -> Iterator[Finding]:
    """Glorot initialization is Géron's pairing for sigmoid, yet a deep sigmoid stack without
    batch norm still loses its gradient in the lower layers (about 4x less per layer)."""
    sigmoid = [key for key, activation, _ in _dense_layers(spec) if activation in ("sigmoid", "logistic")]
    if len(sigmoid) < DEEP_SIGMOID_LAYERS or uses_batch_norm(spec):
        return
    key = "model.activation" if isinstance(spec.model, CompactModel) else sigmoid[0]
    yield warning(
        key,
        f"{len(sigmoid)} sigmoid layers without batch norm: gradients vanish in the lower layers "
        "even with Glorot initialization (see `dnnlab diagnose`); use relu with he_normal, or "
        "batch norm (model.normalization: batch_norm)",
    )


DEEP_RELU_LAYERS = 5
LARGE_NORMAL_STDDEV = 0.5


def check_relu_with_unit_normal_weights(spec: Spec) -> Iterator[Finding]:
    """Géron, Hands-On Machine Learning, ch. 11: with weights from N(0, 1) the variance of each
    layer's outputs is far above its inputs', so a deep stack's activations explode. Warned from
    stddev 0.5 and 5 ReLU-family layers: each layer then multiplies the variance by about
    fan_in * stddev^2 / 2 (8 for 64 inputs), some 10^4 over 5 layers; He's stddev is sqrt(2 /
    fan_in), 0.18 for 64 inputs."""
    hit = [
        (key, init)
        for key, activation, init in _dense_layers(spec)
        if activation in RELU_FAMILY
        and init is not None
        and init.type in ("random_normal", "truncated_normal")
        and init.stddev >= LARGE_NORMAL_STDDEV
    ]
    if len(hit) < DEEP_RELU_LAYERS:
        return
    key = "model.initializer" if isinstance(spec.model, CompactModel) else hit[0][0]
    stddev = max(init.stddev for _, init in hit)
    yield warning(
        key,
        f"{len(hit)} ReLU layers with {hit[0][1].type} weights of stddev {stddev:g}: each layer multiplies "
        "the activations' variance by about fan_in * stddev^2 / 2, so they explode with depth "
        "(Géron, Hands-On Machine Learning, ch. 11); use he_normal",
    )


DEEP_BATCH_NORM_LAYERS = 10
SMALL_LEARNING_RATE = 0.01


def check_deep_batch_norm_stack(spec: Spec) -> Iterator[Finding]:
    """A deep stack with batch norm after every layer. configs/science/deep_batch_norm_exploding.yaml
    (30 layers) measured: the first layer's gradient some 300x the output's at initialization, gone
    after the first epoch; after 20 epochs val accuracy 0.51 against 0.72 without batch norm (3
    seeds), still learning when it stopped; gradient clipping made it worse (0.09). Warned at a
    learning rate of 0.01 or less, the rates that experiment used."""
    model = spec.model
    if not isinstance(model, CompactModel) or model.normalization.type != "batch_norm":
        return
    rate = getattr(spec.training.optimizer, "learning_rate", None)
    if len(model.hidden) < DEEP_BATCH_NORM_LAYERS or not isinstance(rate, (int, float)):
        return
    if rate <= SMALL_LEARNING_RATE:
        yield warning(
            "model.normalization",
            f"batch norm after each of {len(model.hidden)} layers at learning rate {rate:g}: the gradient "
            "grows towards the input at initialization, and 30 such layers learned slower on digits than "
            "without batch norm (configs/science/deep_batch_norm_exploding.yaml); compare with "
            "-o model.normalization=none, or test remedies with `dnnlab diagnose --try-remedies`",
        )


def check_fine_tune_rate_used(spec: Spec) -> Iterator[Finding]:
    """fine_tune_learning_rate applies when the reused layers are unfrozen; with freeze_epochs 0
    they are never frozen, so there is no unfreezing and the rate is ignored."""
    transfer = spec.model.transfer
    if transfer and transfer.fine_tune_learning_rate is not None and transfer.freeze_epochs == 0:
        yield warning(
            "model.transfer.fine_tune_learning_rate",
            f"{transfer.fine_tune_learning_rate:g} is ignored with freeze_epochs 0 (the reused layers are "
            "never frozen, so never unfrozen); set freeze_epochs, or training.optimizer.learning_rate",
        )


def uses_batch_norm(spec: Spec) -> bool:
    """Whether the model has a batch-norm layer anywhere (input, hidden or explicit)."""
    model = spec.model
    if isinstance(model, CompactModel):
        return "batch_norm" in (model.normalization.type, model.input_normalization.type)
    return any(layer.type == "batch_norm" for layer in model.layers)


def check_plain_dropout_with_alpha(spec: Spec) -> Iterator[Finding]:
    model = spec.model
    if isinstance(model, CompactModel) and model.dropout and model.dropout.type == "alpha_dropout":
        if model.activation.type != "selu":
            yield warning(
                "model.dropout",
                f"alpha_dropout preserves SELU's mean and variance; with {model.activation.type} "
                "plain dropout is the usual choice",
            )


def check_bias_before_batch_norm(spec: Spec) -> Iterator[Finding]:
    model = spec.model
    if not isinstance(model, ExplicitModel):
        return
    layers = model.layers
    for index, (layer, nxt) in enumerate(zip(layers, layers[1:])):
        if isinstance(layer, DenseLayer) and layer.use_bias and nxt.type == "batch_norm":
            yield warning(
                f"model.layers[{index}].use_bias",
                "a dense layer followed by batch norm does not need its bias (batch norm's beta "
                "replaces it); set use_bias: false",
            )


def check_plateau_before_early_stopping(spec: Spec) -> Iterator[Finding]:
    schedule, stopping = spec.training.schedule, spec.training.early_stopping
    if schedule.type == "plateau" and stopping is not None and schedule.patience >= stopping.patience:
        yield warning(
            "training.schedule.patience",
            f"plateau patience ({schedule.patience}) should be below early-stopping patience "
            f"({stopping.patience}), or training stops before the learning rate is ever reduced",
        )


DATA_LOSS = "data_loss"


def has_weight_penalty(spec: Spec) -> bool:
    """Whether an l1/l2 regularizer adds a penalty to the loss Keras logs: the run then also logs
    `data_loss` (the loss function alone), the figure two differently regularized runs share."""
    model = spec.model
    if isinstance(model, CompactModel):
        return model.regularizer is not None
    return any(getattr(layer, "regularizer", None) is not None for layer in model.layers)


def check_monitors_are_logged(spec: Spec) -> Iterator[Finding]:
    """Each monitor must name a value the run logs: loss, a metric, or their val_ forms when there
    is a validation split; anything else would never pick a best epoch or stop training."""
    training = spec.training
    monitors = {"training.monitor": training.monitor}
    if training.early_stopping:
        monitors["training.early_stopping.monitor"] = training.early_stopping.monitor
    if training.schedule.type == "plateau":
        monitors["training.schedule.monitor"] = training.schedule.monitor
    logged = ["loss", *([DATA_LOSS] if has_weight_penalty(spec) else []), *(training.metrics or [])]
    if spec.data.validation != 0:
        logged += [f"val_{name}" for name in logged]
    for key, monitor in monitors.items():
        if monitor in logged:
            continue
        if spec.data.validation == 0 and monitor.removeprefix("val_") in logged:
            yield error(
                key,
                f"monitors {monitor!r} but data.validation is 0; set a validation split or monitor 'loss'",
            )
        else:
            yield error(
                key,
                f"monitors {short(monitor)}{did_you_mean(monitor, logged)}, which the run does not log; "
                f"expected one of: {', '.join(logged)} (training.metrics sets the metrics)",
            )


def _output_units(spec: Spec) -> int | None:
    model = spec.model
    if isinstance(model, CompactModel):
        return model.output.units
    last = model.layers[-1]
    return last.units if isinstance(last, DenseLayer) else None


def check_loss_and_metrics_suit_the_labels(spec: Spec) -> Iterator[Finding]:
    """Integer class labels against a k-unit output take only the sparse loss and metrics, and a
    regression target never the sparse cross-entropy: Keras would fail at the first batch."""
    training, units = spec.training, _output_units(spec)
    if spec.data.task == "classification" and units is not None and units > 1:
        losses, metrics = SPARSE_LABEL_LOSSES, SPARSE_LABEL_METRICS
        why = f"class labels are integers and the output has {units} units"
    elif spec.data.task == "regression":
        losses, metrics, why = REGRESSION_LOSSES, REGRESSION_METRICS, "the target is a number per row"
    else:
        return
    if training.loss not in losses:
        yield error(
            "training.loss",
            f"{training.loss!r} does not suit the labels: {why}; expected one of: {', '.join(losses)}",
        )
    for index, metric in enumerate(training.metrics or []):
        if metric not in metrics:
            yield error(
                f"training.metrics[{index}]",
                f"{metric!r} does not suit the labels: {why}; expected one of: {', '.join(metrics)}",
            )


MAX_PARAMETERS = 100_000_000  # 400 MB of float32 weights, and a few times that to train


def dense_parameters(spec: Spec, inputs: int) -> int:
    """Weights and biases of the dense layers for `inputs` input features: nearly all of a dense
    network's parameters, counted from the spec alone."""
    model = spec.model
    if isinstance(model, CompactModel):
        widths = [*model.hidden, model.output.units or 1]
    else:
        widths = [layer.units for layer in model.layers if isinstance(layer, DenseLayer)]
    total, fan_in = 0, inputs
    for width in widths:
        total += (fan_in + 1) * width
        fan_in = width
    return total


def check_model_size(spec: Spec, input_shape: tuple[int, ...]) -> Iterator[Finding]:
    """A model too large to build is refused here, before a run directory or TensorFlow's
    out-of-memory traceback."""
    count = dense_parameters(spec, math.prod(input_shape))
    if count > MAX_PARAMETERS:
        key = "model.hidden" if isinstance(spec.model, CompactModel) else "model.layers"
        yield error(
            key,
            f"the model would have {count:,} parameters ({count * 4 / 2**30:,.1f} GiB of float32 weights, "
            f"a few times that to train); at most {MAX_PARAMETERS:,} are allowed: use fewer or "
            "narrower layers",
        )


CHECKS: tuple[Callable[[Spec], Iterator[Finding]], ...] = (
    check_single_clipping,
    check_mlflow_installed,
    check_piecewise,
    check_rrelu_bounds,
    check_one_cycle,
    check_explicit_output,
    check_classes_unique,
    check_monitors_are_logged,
    check_loss_and_metrics_suit_the_labels,
    check_transfer,
    check_autoencoder,
    check_pretrain,
    check_unlabeled,
    check_initializer_matches_activation,
    check_selu_self_normalization,
    check_deep_sigmoid_stack,
    check_relu_with_unit_normal_weights,
    check_deep_batch_norm_stack,
    check_fine_tune_rate_used,
    check_plain_dropout_with_alpha,
    check_bias_before_batch_norm,
    check_plateau_before_early_stopping,
)


def check_output_covers_classes(spec: Spec, num_classes: int | None) -> Iterator[Finding]:
    """Class indices index the output units under sparse categorical cross-entropy: a label at
    or above the unit count would train on garbage (or fail deep inside TensorFlow)."""
    loss = (spec.training.loss or "").lower()
    if num_classes is None or "sparse_categorical" not in loss:
        return
    model = spec.model
    if isinstance(model, CompactModel):
        key, units = "model.output.units", model.output.units
    elif isinstance(model.layers[-1], DenseLayer):
        key, units = f"model.layers[{len(model.layers) - 1}].units", model.layers[-1].units
    else:
        return
    if units is not None and units < num_classes:
        yield error(
            key,
            f"{units} output units, but the data has labels 0..{num_classes - 1} ({num_classes} classes); "
            f"set it to {num_classes} or leave it out to infer it",
        )


def run_checks(spec: Spec, input_shape: tuple[int, ...] | None = None) -> list[Finding]:
    """Every finding for a spec, errors first, repeated advice merged into one finding; the
    model's size is checked when the input shape is known."""
    found = [finding for check in CHECKS for finding in check(spec)]
    if input_shape is not None:
        found += check_model_size(spec, input_shape)
    findings = merged(found)
    return sorted(findings, key=lambda f: f.level != "error")


def errors_of(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def validate(spec: Spec, input_shape: tuple[int, ...] | None = None) -> list[Finding]:
    """Run every check; the first error becomes a ConfigError, the warnings are returned."""
    findings = run_checks(spec, input_shape)
    errors = errors_of(findings)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{errors[0]}{more}")
    return findings
