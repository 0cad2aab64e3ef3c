"""Learning-rate schedules, one-cycle momentum, and performance scheduling.

The trainer runs one `fit` with `steps_per_execution` of up to hundreds of steps, so a per-batch
Python callback does not see every step. Every schedule that moves during training is therefore
a `LearningRateSchedule` evaluated in the graph on the optimizer's `iterations`. It is saved with
the optimizer in the `.keras` file, so a resumed run continues at exactly the right rate. An
epoch-unit schedule is a step schedule too: t = floor(step / steps_per_epoch), constant within an
epoch and equal to the formula at the (0-based) epoch index.

One-cycle momentum cannot be a learning-rate schedule: Keras optimizers read `momentum` / `beta_1`
as Python floats when the train step is traced. The `OneCycle*` optimizers (dnnlab.model.optimizers)
recompute their update from a momentum schedule of this module evaluated on `iterations`.

Performance scheduling needs validation metrics, which exist only at epoch end, so it is a
callback (dnnlab.training.callbacks.plateau.PlateauScheduler) whose state goes into the run's state.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from dnnlab.model.keras_private import learning_rate_setting
from dnnlab.spec.training import OneCycleSchedule

register = keras.saving.register_keras_serializable(package="dnnlab")


# --- learning-rate schedules ---------------------------------------------------------------


class _StepSchedule(LearningRateSchedule):
    """A formula of t, where t = floor(step / steps_per_unit).

    steps_per_unit is 1 for `unit: step` and the steps per epoch for `unit: epoch`. Keras's own
    decays cannot do this (their staircase floors step / decay_steps, not step / epoch length).
    """

    def __init__(self, steps_per_unit: int = 1):
        if int(steps_per_unit) < 1:
            raise ValueError(f"steps_per_unit must be a positive integer; received {steps_per_unit}")
        self.steps_per_unit = int(steps_per_unit)

    def __call__(self, step):
        t = ops.floor_divide(ops.cast(step, "int64"), self.steps_per_unit)
        return self.at(ops.cast(t, "float32"))

    def at(self, t):
        """The value at t (a float32 tensor: the epoch or step index)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"steps_per_unit": self.steps_per_unit}


@register
class PowerDecay(_StepSchedule):
    """lr0 / (1 + t/s)^c"""

    def __init__(self, initial_learning_rate: float, s: float, c: float = 1.0, steps_per_unit: int = 1):
        super().__init__(steps_per_unit)
        self.initial_learning_rate = float(initial_learning_rate)
        self.s = float(s)
        self.c = float(c)

    def at(self, t):
        return self.initial_learning_rate / ops.power(1.0 + t / self.s, self.c)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "initial_learning_rate": self.initial_learning_rate,
            "s": self.s,
            "c": self.c,
        }


@register
class ExponentialDecay(_StepSchedule):
    """lr0 * base^(t/s): divided by 1/base every s units (Géron's lr0 * 0.1^(t/s))."""

    def __init__(self, initial_learning_rate: float, s: float, base: float = 0.1, steps_per_unit: int = 1):
        super().__init__(steps_per_unit)
        self.initial_learning_rate = float(initial_learning_rate)
        self.s = float(s)
        self.base = float(base)

    def at(self, t):
        return self.initial_learning_rate * ops.power(self.base, t / self.s)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "initial_learning_rate": self.initial_learning_rate,
            "s": self.s,
            "base": self.base,
        }


@register
class PiecewiseConstant(_StepSchedule):
    """values[i] for the first i with t < boundaries[i]; values[-1] after the last boundary."""

    def __init__(self, boundaries: list[int], values: list[float], steps_per_unit: int = 1):
        super().__init__(steps_per_unit)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"piecewise needs one more value than boundaries ({len(boundaries) + 1}); "
                f"received {len(values)}"
            )
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]

    def at(self, t):
        passed = ops.greater_equal(t, ops.convert_to_tensor(self.boundaries, "float32"))
        index = ops.sum(ops.cast(passed, "int32"))
        return ops.take(ops.convert_to_tensor(self.values, "float32"), index)

    def get_config(self) -> dict:
        return {**super().get_config(), "boundaries": self.boundaries, "values": self.values}


@register
class OneCycle(_StepSchedule):
    """Smith's 1cycle curve over `total` units (t = 0 .. total-1).

    With half = floor(total * (1 - last_fraction) / 2): linear from `start` to `peak` over
    [0, half], back to `start` over [half, 2*half], then linear to `final`, reached at the last
    unit (total - 1) and kept after it. The learning rate is OneCycle(start_lr, max_lr, final_lr);
    the momentum is OneCycle(max_momentum, min_momentum, max_momentum): down while the lr goes up,
    up while it goes down, and at max_momentum during the final annealing.
    """

    def __init__(
        self,
        start: float,
        peak: float,
        final: float,
        total: int,
        last_fraction: float = 0.1,
        steps_per_unit: int = 1,
    ):
        super().__init__(steps_per_unit)
        if int(total) < 1:
            raise ValueError(f"one_cycle needs at least one epoch or step; received total={total}")
        self.start = float(start)
        self.peak = float(peak)
        self.final = float(final)
        self.total = int(total)
        self.last_fraction = float(last_fraction)
        # the epsilon keeps e.g. 100 * 0.9 / 2 from flooring to 44
        self.half = math.floor(self.total * (1.0 - self.last_fraction) / 2 + 1e-9)

    def at(self, t):
        half, end = float(self.half), float(self.total - 1)
        span = max(half, 1.0)
        rise = self.start + (self.peak - self.start) * t / span
        fall = self.peak + (self.start - self.peak) * (t - half) / span
        anneal = self.start + (self.final - self.start) * (t - 2 * half) / max(end - 2 * half, 1.0)
        return ops.where(
            t < half,
            rise,
            ops.where(t < 2 * half, fall, ops.where(t < end, anneal, ops.full_like(t, self.final))),
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "start": self.start,
            "peak": self.peak,
            "final": self.final,
            "total": self.total,
            "last_fraction": self.last_fraction,
        }


def steps_per_unit(schedule: Any, steps_per_epoch: int) -> int:
    return steps_per_epoch if getattr(schedule, "unit", "step") == "epoch" else 1


def _one_cycle_learning_rate(schedule: OneCycleSchedule, steps_per_unit: int, total: int) -> OneCycle:
    start = schedule.start_lr if schedule.start_lr is not None else schedule.max_lr / 10
    final = schedule.final_lr if schedule.final_lr is not None else start / 1000
    return OneCycle(start, schedule.max_lr, final, total, schedule.last_fraction, steps_per_unit)


def one_cycle_momentum(schedule: OneCycleSchedule, steps_per_unit: int, total: int) -> OneCycle:
    high, low = schedule.max_momentum, schedule.min_momentum
    return OneCycle(high, low, high, total, schedule.last_fraction, steps_per_unit)


# name -> (schedule spec, lr0, steps per unit, total units of training) -> learning rate
_LEARNING_RATES: dict[str, Callable[..., float | LearningRateSchedule]] = {
    "none": lambda schedule, lr0, per, total: lr0,
    "plateau": lambda schedule, lr0, per, total: lr0,  # callbacks.PlateauScheduler changes it
    "power": lambda schedule, lr0, per, total: PowerDecay(lr0, schedule.s, schedule.c, per),
    "exponential": lambda schedule, lr0, per, total: ExponentialDecay(lr0, schedule.s, schedule.base, per),
    "piecewise": lambda schedule, lr0, per, total: PiecewiseConstant(
        schedule.boundaries, schedule.values, per
    ),
    "one_cycle": lambda schedule, lr0, per, total: _one_cycle_learning_rate(schedule, per, total),
}


def make_learning_rate(
    optimizer_spec: Any, schedule_spec: Any, steps_per_epoch: int, epochs: int
) -> float | LearningRateSchedule:
    """The optimizer's `learning_rate`: a float for none/plateau, else an in-graph schedule."""
    build = _LEARNING_RATES.get(schedule_spec.type)
    if build is None:
        raise ValueError(
            f"unknown schedule {schedule_spec.type!r}; expected one of {', '.join(_LEARNING_RATES)}"
        )
    per = steps_per_unit(schedule_spec, steps_per_epoch)
    total = epochs * steps_per_epoch // per
    return build(schedule_spec, optimizer_spec.learning_rate, per, total)


# --- reading the schedule back -----------------------------------------------------------


def epoch_learning_rate(optimizer: keras.optimizers.Optimizer, epoch: int, steps_per_epoch: int) -> float:
    """The learning rate of the first step of `epoch` (0-based), for metrics.csv.

    A schedule is evaluated at step epoch * steps_per_epoch; a constant or plateau rate is the
    variable's current value, so read it before PlateauScheduler's on_epoch_end can lower it.
    """
    schedule = learning_rate_setting(optimizer)
    if isinstance(schedule, LearningRateSchedule):
        value = schedule(epoch * steps_per_epoch)
    else:
        value = optimizer.learning_rate
    return float(ops.convert_to_numpy(value))
