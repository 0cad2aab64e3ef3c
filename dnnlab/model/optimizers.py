"""The Keras optimizer for a spec, and the optimizers whose momentum follows a schedule.

One-cycle momentum cannot be a learning-rate schedule: Keras optimizers read `momentum` /
`beta_1` as Python floats when the train step is traced. The `OneCycle*` optimizers here
recompute Keras's update with the momentum of a schedule (dnnlab.model.schedules.OneCycle) evaluated
on `iterations`, in the graph, and serialize it. They reach into optimizer internals through
dnnlab.model.keras_private. Their registered names ("dnnlab>OneCycleNadam", ...) are in saved
`.keras` files: keep the class names.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dnnlab.model.keras_private import NadamProductHook, nadam_momentum_product, slot
from dnnlab.model.schedules import make_learning_rate, one_cycle_momentum, steps_per_unit

register = keras.saving.register_keras_serializable(package="dnnlab")


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
        m = slot(self, "momentums", variable)
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
        velocity, momentum = slot(self, "_velocities", variable), slot(self, "_momentums", variable)
        rho = self.rho
        self.assign(
            velocity, ops.add(ops.multiply(rho, velocity), ops.multiply(1 - rho, ops.square(gradient)))
        )
        if self.centered:
            average = slot(self, "_average_gradients", variable)
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
        m, v = slot(self, "_momentums", variable), slot(self, "_velocities", variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = slot(self, "_velocity_hats", variable)
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
        m, u = slot(self, "_m", variable), slot(self, "_u", variable)
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
class OneCycleNadam(_MomentumSchedule, NadamProductHook, keras.optimizers.Nadam):
    """Nadam with a scheduled beta_1.

    Dozat's Nadam is defined with a momentum schedule mu_t, which Keras sets to
    beta_1 * (1 - 0.5 * 0.96^t) and whose running product it keeps. Here
    mu_t = beta_1(t) * (1 - 0.5 * 0.96^t) with beta_1(t) from the schedule, so the product is the
    exact one for the varying momentum, and the first moment uses beta_1(t) like Keras's.
    """

    def _mu(self, dtype, offset: int):
        """Dozat's mu for the update at iterations + offset (Keras's u_t for offset 0)."""
        step = ops.cast(self.iterations + offset + 1, dtype)
        return self._momentum(dtype, offset) * (1.0 - 0.5 * ops.power(ops.cast(0.96, dtype), step))

    def update_momentum_product(self, product) -> None:
        self.assign(product, product * self._mu(product.dtype, 0))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1 = self._momentum(dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        u_t, u_t_1 = self._mu(dtype, 0), self._mu(dtype, 1)
        u_product_t = ops.cast(nadam_momentum_product(self), dtype)
        u_product_t_1 = u_product_t * u_t_1
        m, v = slot(self, "_momentums", variable), slot(self, "_velocities", variable)
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
        per = steps_per_unit(schedule_spec, steps_per_epoch)
        momentum = one_cycle_momentum(schedule_spec, per, epochs * steps_per_epoch // per)
        return ONE_CYCLE_OPTIMIZERS[optimizer_spec.type](momentum_schedule=momentum, **kwargs)
    return OPTIMIZERS[optimizer_spec.type](**kwargs)


def epoch_momentum(optimizer: keras.optimizers.Optimizer, epoch: int, steps_per_epoch: int) -> float | None:
    """The scheduled momentum (or beta_1) of the first step of `epoch`; None when not scheduled."""
    if not isinstance(optimizer, _MomentumSchedule):
        return None
    return float(ops.convert_to_numpy(optimizer.momentum_at(epoch * steps_per_epoch)))
