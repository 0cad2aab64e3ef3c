"""What to tell a user whose run diverged: the rule of thumb that fits the spec."""

from __future__ import annotations

from dnnlab.spec.checks import uses_batch_norm
from dnnlab.spec.model import CompactModel, recommended_initializer
from dnnlab.spec.models import Spec
from dnnlab.training.callbacks.divergence import Divergence

# --- advice for a diverged run ------------------------------------------------------------


def divergence_message(spec: Spec, divergence: Divergence) -> str:
    """What went non-finite or exploded in which epoch, and the remedies the book gives (Géron, ch. 11)
    that the spec lacks."""
    values = ", ".join(f"{name} {value:.3g}" for name, value in divergence.values.items())
    if divergence.reason:
        values += f" ({divergence.reason})"
    lr = divergence.learning_rate
    tips = [
        f"a lower learning rate (it was {lr:g} in that epoch; "
        f"e.g. training.optimizer.learning_rate: {lr / 10:g})"
    ]
    optimizer = spec.training.optimizer
    if not any(getattr(optimizer, key, None) for key in ("clipnorm", "clipvalue", "global_clipnorm")):
        tips.append("gradient clipping (training.optimizer.clipnorm: 1.0)")
    activation, initializer = _first_hidden_layer(spec)
    if activation is not None and initializer != recommended_initializer(activation):
        paired = recommended_initializer(activation)
        tips.append(f"the initializer paired with {activation} (model.initializer: {paired})")
    if not uses_batch_norm(spec):
        tips.append("batch norm (model.normalization: batch_norm)")
    advice = tips[0] if len(tips) == 1 else ", ".join(tips[:-1]) + " or " + tips[-1]
    where = f"pretraining {divergence.phase}" if divergence.phase else "training"
    return f"{where} diverged in epoch {divergence.epoch + 1}: {values}. Try {advice}."


def _first_hidden_layer(spec: Spec) -> tuple[str | None, str | None]:
    """The activation and initializer names of the first hidden layer (None where not set)."""
    model = spec.model
    if isinstance(model, CompactModel):
        initializer = model.initializer.type if model.initializer else None
        activation = model.activation.type
        return activation, initializer or recommended_initializer(activation)
    for layer in model.layers[:-1]:
        if layer.type == "dense" and layer.activation is not None:
            return layer.activation.type, layer.initializer.type if layer.initializer else "glorot_uniform"
    return None, None


def divergence_record(spec: Spec, divergence: Divergence) -> dict[str, object]:
    """What run.json records of a divergence (`divergence`); compare and sweep show its message.
    The values are text: they are NaN or infinite, which JSON has no numbers for."""
    record = {
        "epoch": divergence.epoch,  # 0-based, as metrics.csv (pretrain.csv's within a phase)
        "values": {name: str(value) for name, value in divergence.values.items()},
        "learning_rate": float(divergence.learning_rate),
        "reason": divergence.reason,
        "message": divergence_message(spec, divergence),
    }
    if divergence.phase is not None:
        record["phase"] = divergence.phase
    return record
