"""The phases of a run with `training.pretrain` (greedy layer-wise): one per hidden dense layer,
named `pretrain_1`, `pretrain_2`, ..., then `fine_tune`. Computed from the spec and the input
shape alone, so `check` can show them without TensorFlow; the trainer builds the same list.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dnnlab.spec.model import CompactModel, DenseLayer
from dnnlab.spec.models import Spec

FINE_TUNE = "fine_tune"


@dataclass(frozen=True)
class Phase:
    """One layer's autoencoder: `layer` (the classifier's dense layer) encodes `inputs` values
    into `units` and a decoder reconstructs them, with `loss`."""

    name: str  # pretrain_1, pretrain_2, ...
    layer: str
    inputs: int
    units: int
    loss: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def phase_name(index: int) -> str:
    """`pretrain_1` for the first hidden dense layer (index 0)."""
    return f"pretrain_{index + 1}"


def hidden_dense(spec: Spec) -> list[tuple[str, int]]:
    """(layer name, units) of each hidden dense layer, as dnnlab.model.build names them."""
    model = spec.model
    if isinstance(model, CompactModel):
        return [(f"dense_{i}", units) for i, units in enumerate(model.hidden, start=1)]
    last = len(model.layers) - 1
    return [
        (f"dense_{i}", layer.units)
        for i, layer in enumerate(model.layers)
        if isinstance(layer, DenseLayer) and i != last
    ]


def reconstruction_loss(spec: Spec, index: int) -> str:
    """The first layer reconstructs the scaled inputs: binary cross-entropy (sigmoid output) when
    they lie in [0, 1] (scaling `unit`), else mse, as an autoencoder run does; a later layer
    reconstructs codes, which need not lie in [0, 1]: mse."""
    return "binary_crossentropy" if index == 0 and spec.data.scaling == "unit" else "mse"


def pretrain_phases(spec: Spec, input_shape: tuple[int, ...]) -> list[Phase]:
    """The pretraining phases in order; empty without `training.pretrain`."""
    if spec.training.pretrain is None:
        return []
    phases, width = [], math.prod(input_shape)
    for index, (layer, units) in enumerate(hidden_dense(spec)):
        phases.append(Phase(phase_name(index), layer, width, units, reconstruction_loss(spec, index)))
        width = units
    return phases


def pretrain_record(spec: Spec, input_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """The pretraining plan as run.json and `summary --json` record it; None without one."""
    pretrain = spec.training.pretrain
    if pretrain is None:
        return None
    return {
        "method": pretrain.method,
        "epochs_per_layer": pretrain.epochs_per_layer,
        "phases": [p.to_dict() for p in pretrain_phases(spec, input_shape)],
    }


def describe_record(record: dict[str, Any], fine_tune_epochs: int) -> str:
    """One line of a pretraining plan (`pretrain_record`): each phase, then the fine-tune."""
    steps = ", ".join(
        f"{p['name']} {p['layer']} {p['inputs']}->{p['units']} ({p['loss']})" for p in record["phases"]
    )
    return (
        f"phases: {steps}: {record['epochs_per_layer']} epoch(s) each; then {FINE_TUNE}: "
        f"{fine_tune_epochs} epoch(s)"
    )


def describe(spec: Spec, input_shape: tuple[int, ...]) -> str | None:
    """One line for `dnnlab check`: the phases and their epochs; None without pretraining."""
    record = pretrain_record(spec, input_shape)
    return None if record is None else describe_record(record, spec.training.epochs)
