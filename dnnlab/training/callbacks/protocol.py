"""The resumable-state protocol of dnnlab's callbacks, and small helpers they share."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from dnnlab.model.keras_private import ImprovementRuleHook
from dnnlab.rundir.better import is_better


@runtime_checkable
class Resumable(Protocol):
    """A callback whose state is saved in state.json under `state_key` and restored on resume.

    The names are PyTorch Lightning's (`Callback.state_key`, `state_dict`, `load_state_dict`), so a
    reader who knows Lightning knows them; state.json keys are the `state_key` values."""

    state_key: ClassVar[str]

    def state_dict(self) -> dict[str, Any]:
        """The state as plain JSON values (a non-finite number as null)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what state_dict returned, before the next `fit` starts."""
        ...


def finite_or_none(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def float32_value(value: Any) -> float:
    """The shortest decimal that is the same float32 (Keras computes in float32): 0.002, not
    0.0020000000949949026."""
    return float(str(np.float32(value)))


class SharedImprovementRule(ImprovementRuleHook):
    def is_improvement(self, value, reference) -> bool:
        reference = None if reference is None else float(reference)
        return is_better(float(value), reference, self.mode, self.min_delta)
