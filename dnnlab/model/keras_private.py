"""Every use of a private attribute of Keras or TensorFlow (Lite), in one place.

Neither has a public way to do these few things dnnlab needs (each function says why). They were
checked on Keras 3.15.1 with TensorFlow 2.21.0 (the TensorFlow backend); pyproject.toml keeps Keras
below the next minor release for this reason. When Keras or TensorFlow moves, this module is the
one to check: tests/test_schedules.py compares the one-cycle optimizers step by step with Keras's
own, tests/test_export.py reads an int8 TFLite model's kernels, and tests/test_execution.py,
tests/test_mc.py and tests/test_train.py exercise the rest.
"""

from __future__ import annotations

from typing import Any

import keras

KERAS_CHECKED = "3.15.1"
TENSORFLOW_CHECKED = "2.21.0"


def set_jit_compile(model: keras.Model, enabled: bool) -> None:
    """Turn XLA on or off for `model`. Keras's `jit_compile` setter refuses XLA under op
    determinism; dnnlab's layers compile to deterministic CPU code, so it sets the field."""
    model._jit_compile = enabled


def learning_rate_setting(optimizer: keras.optimizers.Optimizer) -> Any:
    """The learning rate as the optimizer was given it: a float variable or a schedule
    (`optimizer.learning_rate` evaluates a schedule at the current step instead)."""
    return optimizer._learning_rate


def build_for_training(model: keras.Model, x: Any, y: Any) -> None:
    """Create the optimizer's and the compiled metrics' variables now, from a batch `(x, y)`
    (its shapes and dtypes only). Keras's TensorFlow trainer creates them while tracing the first
    train step, and TensorFlow traces a function that creates variables a second time: built
    beforehand, the first epoch traces its step once (1.7 s of CPU instead of 2.6 s for the
    quick start's first epoch). Keras builds this way itself under a distribution strategy."""
    model._symbolic_build(data_batch=(x, y))


def producer(tensor: Any) -> tuple[keras.layers.Layer, list[Any]]:
    """The layer that produced a symbolic tensor of a functional model, and that call's input
    tensors: how a functional model is walked from its output back to its input."""
    layer, node_index, _ = tensor._keras_history
    return layer, list(layer._inbound_nodes[node_index].input_tensors)


# --- optimizer internals, for the optimizers whose momentum follows a schedule ---------------


def slot(optimizer: keras.optimizers.Optimizer, attribute: str, variable: Any) -> Any:
    """`variable`'s entry in the optimizer's per-variable list `attribute` (SGD's `momentums`,
    Adam's `_momentums` and `_velocities`, Adamax's `_m` and `_u`, ...)."""
    return getattr(optimizer, attribute)[optimizer._get_variable_index(variable)]


def nadam_momentum_product(optimizer: keras.optimizers.Nadam) -> Any:
    """Nadam's running product of its momentum schedule (Dozat's prod mu_i)."""
    return optimizer._u_product


class NadamProductHook:
    """Mixin for a Nadam subclass whose momentum varies during training.

    Keras's Nadam multiplies its running momentum product by a factor made from its constant
    beta_1 in `_backend_update_step`, before the per-variable updates. Here the subclass's
    `update_momentum_product(product)` does that instead, and Nadam's own update is skipped.
    """

    def update_momentum_product(self, product: Any) -> None:
        raise NotImplementedError

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self.update_momentum_product(nadam_momentum_product(self))
        super(keras.optimizers.Nadam, self)._backend_update_step(grads, trainable_variables, learning_rate)


# --- TensorFlow Lite --------------------------------------------------------------------------


def tflite_dense_kernel_dtypes(interpreter: Any) -> list[Any]:
    """The kernel's dtype of each FULLY_CONNECTED op of a `tf.lite.Interpreter`, in the flat
    buffer's op order. The interpreter's private op list is the only record of which op reads
    which tensor; its public `get_tensor_details` lists tensors without their ops."""
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    return [interpreter._get_tensor_details(op["inputs"][1], 0)["dtype"] for op in ops]


# --- callbacks -------------------------------------------------------------------------------


class ImprovementRuleHook:
    """Mixin for subclasses of Keras's monitoring callbacks (EarlyStopping, ReduceLROnPlateau):
    their "improved" decision is the subclass's `is_improvement(value, reference)`.

    Keras decides with its own `monitor_op` (and negates `min_delta` for 'min' in
    `_set_monitor_op`); both hooks are replaced, so `min_delta` keeps its sign and `mode` must
    be 'min' or 'max'.
    """

    def is_improvement(self, value: float, reference: float | None) -> bool:
        raise NotImplementedError

    def _set_monitor_op(self):
        self.monitor_op = self.is_improvement  # "set": Keras checks it is not None

    def _is_improvement(self, monitor_value, reference_value):
        return self.is_improvement(monitor_value, reference_value)
