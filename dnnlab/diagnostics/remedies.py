"""The remedies a verdict names, as concrete overrides a sweep can try.

Each verdict of `verdicts` names remedies in words (Géron, Hands-On Machine Learning, ch. 11);
this module turns them into `-o KEY=VALUE` overrides of one spec: gradient clipping at norm 1,
the learning rate 10x lower or higher, twice the epochs (a run still learning when it stopped),
the initializer paired with the activation, batch norm, a non-saturating activation. A remedy the
spec already has is not suggested. The model-side remedies apply to the compact model form
(`hidden:`); a `layers:` list gets the training-side ones only. TensorFlow-free: `diagnose
RUN_DIR` suggests them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnnlab.spec.model import RELU_FAMILY, recommended_initializer
from dnnlab.spec.models import Spec

CLIPNORM = 1.0
LR_FACTOR = 10.0
EPOCHS_FACTOR = 2

# Which remedies each verdict names, in the order they are tried.
REMEDIES_FOR = {
    "exploding_gradients": ("clipnorm", "lower_lr", "paired_init", "no_batch_norm"),
    "vanishing_gradients": ("paired_init", "relu", "batch_norm", "higher_lr"),
    "saturation": ("paired_init", "relu", "batch_norm"),
    "dead_units": ("leaky_relu", "lower_lr", "paired_init"),
    "self_normalization_broken": ("lower_lr", "paired_init"),
    "still_learning": ("more_epochs",),
}


@dataclass(frozen=True)
class Remedy:
    """One remedy: its label in sentences, the overrides that apply it, the verdicts that name it."""

    label: str
    params: dict[str, Any]  # dotted key -> value, as a sweep trial's params
    because: tuple[str, ...] = field(default=())

    @property
    def overrides(self) -> list[str]:
        """The `-o` options that apply it, for a user to copy."""
        return [f"{key}={_yaml(value)}" for key, value in self.params.items()]


def _yaml(value: Any) -> str:
    """A value as `-o` takes it: numbers and names plain, mappings in flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def remedies_for(kinds: list[str], spec: Spec) -> list[Remedy]:
    """The distinct remedies the verdicts `kinds` name that the spec does not already have, each
    with the verdicts that name it."""
    found: dict[str, tuple[Remedy, list[str]]] = {}
    for kind in kinds:
        for name in REMEDIES_FOR.get(kind, ()):
            remedy = _make(name, spec)
            if remedy is None:
                continue
            entry = found.setdefault(remedy.label, (remedy, []))
            if kind not in entry[1]:
                entry[1].append(kind)
    return [Remedy(r.label, r.params, tuple(kinds_)) for r, kinds_ in found.values()]


def _make(name: str, spec: Spec) -> Remedy | None:
    optimizer = spec.training.optimizer
    lr = getattr(optimizer, "learning_rate", None)
    compact = hasattr(spec.model, "hidden")
    if name == "clipnorm":
        if getattr(optimizer, "clipnorm", None) is not None and optimizer.clipnorm <= CLIPNORM:
            return None
        return Remedy(f"clipnorm {CLIPNORM:g}", {"training.optimizer.clipnorm": CLIPNORM})
    if name == "more_epochs":
        epochs = spec.training.epochs * EPOCHS_FACTOR
        return Remedy("twice the epochs", {"training.epochs": epochs})
    if name in ("lower_lr", "higher_lr"):
        if not isinstance(lr, (int, float)):
            return None  # a schedule: the factor would apply to its initial rate only
        new = lr / LR_FACTOR if name == "lower_lr" else lr * LR_FACTOR
        word = "lower" if name == "lower_lr" else "higher"
        return Remedy(
            f"learning rate {new:.3g} ({LR_FACTOR:g}x {word})", {"training.optimizer.learning_rate": new}
        )
    if not compact:
        return None
    model = spec.model
    activation = model.activation.type
    initializer = model.initializer.type if model.initializer is not None else None
    if name == "paired_init":
        paired = recommended_initializer(activation)
        if initializer == paired:
            return None
        return Remedy(f"initializer {paired}", {"model.initializer": {"type": paired}})
    if name == "relu":
        if activation in RELU_FAMILY or activation == "selu":
            return None
        return Remedy(
            "relu with he_normal",
            {"model.activation": {"type": "relu"}, "model.initializer": {"type": "he_normal"}},
        )
    if name == "leaky_relu":
        if activation != "relu":
            return None
        return Remedy(
            "leaky_relu with he_normal",
            {"model.activation": {"type": "leaky_relu"}, "model.initializer": {"type": "he_normal"}},
        )
    if name == "batch_norm":
        if model.normalization.type == "batch_norm" or activation == "selu":
            return None
        return Remedy("batch norm", {"model.normalization": {"type": "batch_norm"}})
    if name == "no_batch_norm":
        if model.normalization.type != "batch_norm":
            return None
        return Remedy("no batch norm", {"model.normalization": {"type": "none"}})
    raise ValueError(f"unknown remedy {name}")
