"""Learning-rate schedules, one-cycle momentum, and performance scheduling.

The trainer runs one `fit` with `steps_per_execution` of up to hundreds of steps, so a per-batch
Python callback does not see every step. Every schedule that moves during training is therefore
a `LearningRateSchedule` evaluated in the graph on the optimizer's `iterations`. It is saved with
the optimizer in the `.keras` file, so a resumed run continues at exactly the right rate. An
epoch-unit schedule is a step schedule too: t = floor(step / steps_per_epoch), constant within an
epoch and equal to the formula at the (0-based) epoch index.

One-cycle momentum cannot be a learning-rate schedule: Keras optimizers read `momentum` / `beta_1`
as Python floats when the train step is traced. The `OneCycle*` optimizers below recompute their
update from a momentum schedule evaluated on `iterations`, in the graph, and serialize it.

Performance scheduling needs validation metrics, which exist only at epoch end, so it stays a
callback (`PlateauScheduler`) whose state goes into the run's state.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from dnnlab.spec import models

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
    """lr0 * base^(t/s): divided by 1/base every s units (the notes' lr0 * 0.1^(t/s))."""

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


def _steps_per_unit(schedule: Any, steps_per_epoch: int) -> int:
    return steps_per_epoch if getattr(schedule, "unit", "step") == "epoch" else 1


def _one_cycle_learning_rate(schedule: models.OneCycleSchedule, steps_per_unit: int, total: int) -> OneCycle:
    start = schedule.start_lr if schedule.start_lr is not None else schedule.max_lr / 10
    final = schedule.final_lr if schedule.final_lr is not None else start / 1000
    return OneCycle(start, schedule.max_lr, final, total, schedule.last_fraction, steps_per_unit)


def _one_cycle_momentum(schedule: models.OneCycleSchedule, steps_per_unit: int, total: int) -> OneCycle:
    high, low = schedule.max_momentum, schedule.min_momentum
    return OneCycle(high, low, high, total, schedule.last_fraction, steps_per_unit)


# name -> (schedule spec, lr0, steps per unit, total units of training) -> learning rate
_LEARNING_RATES: dict[str, Callable[..., float | LearningRateSchedule]] = {
    "none": lambda schedule, lr0, per, total: lr0,
    "plateau": lambda schedule, lr0, per, total: lr0,  # PlateauScheduler changes the variable
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
    per = _steps_per_unit(schedule_spec, steps_per_epoch)
    total = epochs * steps_per_epoch // per
    return build(schedule_spec, optimizer_spec.learning_rate, per, total)


# --- optimizers whose momentum follows a schedule ------------------------------------------


class _MomentumSchedule:
    """Mixin: momentum (SGD, RMSprop) or beta_1 (the Adam family) = momentum_schedule(step).

    The subclass's update_step is Keras's own, with the constant replaced by the schedule's value
    at the current `iterations`, so the momentum changes every step inside the compiled graph. The
    constant (`momentum`, `beta_1`) stays in the config but is not used by the update.
    """

    def __init__(self, *, momentum_schedule: Any, **kwargs):
        super().__init__(**kwargs)
        if isinstance(momentum_schedule, dict):
            momentum_schedule = keras.saving.deserialize_keras_object(momentum_schedule)
        self.momentum_schedule = momentum_schedule

    def momentum_at(self, step):
        """The momentum (or beta_1) used by the update at optimizer step `step`."""
        return self.momentum_schedule(step)

    def _momentum(self, dtype, offset: int = 0):
        return ops.cast(self.momentum_schedule(self.iterations + offset), dtype)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "momentum_schedule": keras.saving.serialize_keras_object(self.momentum_schedule),
        }


@register
class OneCycleSGD(_MomentumSchedule, keras.optimizers.SGD):
    """SGD (momentum or Nesterov, as Keras defines them) with a scheduled momentum."""

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        mu = self._momentum(variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, ops.subtract(ops.multiply(m, mu), ops.multiply(gradient, lr)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, mu), ops.multiply(gradient, lr)))
        else:
            self.assign_add(variable, m)


@register
class OneCycleRMSprop(_MomentumSchedule, keras.optimizers.RMSprop):
    """RMSprop with momentum, the momentum scheduled."""

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        velocity, momentum = self._velocities[index], self._momentums[index]
        rho = self.rho
        self.assign(
            velocity, ops.add(ops.multiply(rho, velocity), ops.multiply(1 - rho, ops.square(gradient)))
        )
        if self.centered:
            average = self._average_gradients[index]
            self.assign(average, ops.add(ops.multiply(rho, average), ops.multiply(1 - rho, gradient)))
            denominator = velocity - ops.square(average) + self.epsilon
        else:
            denominator = ops.add(velocity, self.epsilon)
        increment = ops.divide(ops.multiply(lr, gradient), ops.sqrt(denominator))
        self.assign(momentum, ops.add(ops.multiply(self._momentum(variable.dtype), momentum), increment))
        self.assign_sub(variable, momentum)


class _ScheduledAdamUpdate:
    """Adam's update with beta_1 = the schedule's value at this step.

    The bias correction uses the current beta_1: 1 - beta_1(t)^(t+1), as PyTorch's Adam does under
    OneCycleLR's momentum cycling. The exact correction would be 1 - prod(beta_1(i)); the two
    differ only in the first few dozen steps, where beta_1 is still max_momentum anyway.
    """

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1 = self._momentum(variable.dtype)
        beta_2 = ops.cast(self.beta_2, variable.dtype)
        alpha = lr * ops.sqrt(1 - ops.power(beta_2, local_step)) / (1 - ops.power(beta_1, local_step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))


@register
class OneCycleAdam(_MomentumSchedule, _ScheduledAdamUpdate, keras.optimizers.Adam):
    """Adam with a scheduled beta_1."""


@register
class OneCycleAdamW(_MomentumSchedule, _ScheduledAdamUpdate, keras.optimizers.AdamW):
    """AdamW with a scheduled beta_1 (the decoupled weight decay is Keras's, applied before)."""


@register
class OneCycleAdamax(_MomentumSchedule, keras.optimizers.Adamax):
    """Adamax with a scheduled beta_1 (bias correction with the current beta_1, as for Adam)."""

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1 = self._momentum(variable.dtype)
        index = self._get_variable_index(variable)
        m, u = self._m[index], self._u[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign(u, ops.maximum(ops.multiply(self.beta_2, u), ops.abs(gradient)))
        self.assign_sub(
            variable,
            ops.divide(
                ops.multiply(lr, m),
                ops.multiply(1 - ops.power(beta_1, local_step), ops.add(u, self.epsilon)),
            ),
        )


@register
class OneCycleNadam(_MomentumSchedule, keras.optimizers.Nadam):
    """Nadam with a scheduled beta_1.

    Dozat's Nadam is defined with a momentum schedule mu_t, which Keras sets to
    beta_1 * (1 - 0.5 * 0.96^t) and whose running product it keeps in `_u_product`. Here
    mu_t = beta_1(t) * (1 - 0.5 * 0.96^t) with beta_1(t) from the schedule, so the product is the
    exact one for the varying momentum, and the first moment uses beta_1(t) like Keras's.
    """

    def _mu(self, dtype, offset: int):
        """Dozat's mu for the update at iterations + offset (Keras's u_t for offset 0)."""
        step = ops.cast(self.iterations + offset + 1, dtype)
        return self._momentum(dtype, offset) * (1.0 - 0.5 * ops.power(ops.cast(0.96, dtype), step))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        dtype = self._u_product.dtype
        self.assign(self._u_product, self._u_product * self._mu(dtype, 0))
        # skip Nadam's own product update, which uses the constant beta_1
        super(keras.optimizers.Nadam, self)._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1 = self._momentum(dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        u_t, u_t_1 = self._mu(dtype, 0), self._mu(dtype, 1)
        u_product_t = ops.cast(self._u_product, dtype)
        u_product_t_1 = u_product_t * u_t_1
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = ops.add(
            ops.divide(ops.multiply(u_t_1, m), 1 - u_product_t_1),
            ops.divide(ops.multiply(1 - u_t, gradient), 1 - u_product_t),
        )
        v_hat = ops.divide(v, 1 - ops.power(beta_2, local_step))
        self.assign_sub(variable, ops.divide(ops.multiply(m_hat, lr), ops.add(ops.sqrt(v_hat), self.epsilon)))


# --- the optimizer for a spec --------------------------------------------------------------

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "sgd": keras.optimizers.SGD,
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
    "adamw": keras.optimizers.AdamW,
    "ftrl": keras.optimizers.Ftrl,
}

ONE_CYCLE_OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "sgd": OneCycleSGD,
    "rmsprop": OneCycleRMSprop,
    "adam": OneCycleAdam,
    "adamax": OneCycleAdamax,
    "nadam": OneCycleNadam,
    "adamw": OneCycleAdamW,
}


def _has_momentum(optimizer_spec: Any) -> bool:
    """Whether one-cycle should schedule this optimizer's momentum (or beta_1)."""
    if optimizer_spec.type in ("sgd", "rmsprop"):
        return optimizer_spec.momentum > 0
    return optimizer_spec.type in ONE_CYCLE_OPTIMIZERS


def make_optimizer(
    optimizer_spec: Any, schedule_spec: Any, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """The Keras optimizer for the spec, its learning rate following the schedule.

    Every field of the optimizer spec is passed under its Keras name (clipping included). With
    one_cycle and an optimizer that has a momentum (sgd or rmsprop with momentum > 0, the Adam
    family's beta_1), the momentum is scheduled too and replaces the spec's constant.
    """
    if optimizer_spec.type not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {optimizer_spec.type!r}; expected one of {', '.join(OPTIMIZERS)}"
        )
    kwargs = optimizer_spec.model_dump(exclude={"type"}, exclude_none=True)
    kwargs["learning_rate"] = make_learning_rate(optimizer_spec, schedule_spec, steps_per_epoch, epochs)
    if schedule_spec.type == "one_cycle" and _has_momentum(optimizer_spec):
        per = _steps_per_unit(schedule_spec, steps_per_epoch)
        momentum = _one_cycle_momentum(schedule_spec, per, epochs * steps_per_epoch // per)
        return ONE_CYCLE_OPTIMIZERS[optimizer_spec.type](momentum_schedule=momentum, **kwargs)
    return OPTIMIZERS[optimizer_spec.type](**kwargs)


def epoch_learning_rate(optimizer: keras.optimizers.Optimizer, epoch: int, steps_per_epoch: int) -> float:
    """The learning rate of the first step of `epoch` (0-based), for metrics.csv.

    A schedule is evaluated at step epoch * steps_per_epoch; a constant or plateau rate is the
    variable's current value, so read it before PlateauScheduler's on_epoch_end can lower it.
    """
    # Keras has no public accessor for the schedule: `learning_rate` evaluates it at `iterations`
    schedule = optimizer._learning_rate
    if isinstance(schedule, LearningRateSchedule):
        value = schedule(epoch * steps_per_epoch)
    else:
        value = optimizer.learning_rate
    return float(ops.convert_to_numpy(value))


def epoch_momentum(optimizer: keras.optimizers.Optimizer, epoch: int, steps_per_epoch: int) -> float | None:
    """The scheduled momentum (or beta_1) of the first step of `epoch`; None when not scheduled."""
    if not isinstance(optimizer, _MomentumSchedule):
        return None
    return float(ops.convert_to_numpy(optimizer.momentum_at(epoch * steps_per_epoch)))


# --- performance scheduling ----------------------------------------------------------------


class PlateauScheduler(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose wait / best / cooldown survive a restart.

    Keras's callback resets them in on_train_begin, so every `fit` would forget them. Here a new
    instance starts fresh (its constructor does that) and `fit` never resets it; a resumed run
    calls set_state with what get_state returned at the checkpoint. The learning rate itself is
    the optimizer's variable, saved in the .keras file.
    """

    def on_train_begin(self, logs=None):
        pass

    def get_state(self) -> dict:
        """wait, best and cooldown_counter, JSON-serializable (a non-finite best is null)."""
        best = None if self.best is None else float(self.best)
        return {
            "wait": int(self.wait),
            "best": best if best is not None and math.isfinite(best) else None,
            "cooldown_counter": int(self.cooldown_counter),
        }

    def set_state(self, state: dict) -> None:
        """Continue from a get_state() dict."""
        self.wait = int(state["wait"])
        self.best = None if state["best"] is None else float(state["best"])
        self.cooldown_counter = int(state["cooldown_counter"])


def schedule_callbacks(schedule_spec: Any) -> list[keras.callbacks.Callback]:
    """The callbacks a schedule needs beside the optimizer: PlateauScheduler for plateau."""
    if schedule_spec.type != "plateau":
        return []
    return [
        PlateauScheduler(
            monitor=schedule_spec.monitor,
            factor=schedule_spec.factor,
            patience=schedule_spec.patience,
            min_delta=schedule_spec.min_delta,
            cooldown=schedule_spec.cooldown,
            min_lr=schedule_spec.min_lr,
        )
    ]
