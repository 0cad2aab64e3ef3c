"""The tf.data pipelines of a run: training blocks in an order drawn from (seed, epoch),
and validation and test batches in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np

from dnnlab import runtime
from dnnlab.spec.models import Spec

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def make_train_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: tf.Variable, batches_per_element: int = 1
):
    """Batches of one epoch in the order drawn from (seed, epoch); `epoch` is read when each
    epoch's iterator starts, so a resumed run replays the same order. Each element `(x, y, rows)`
    holds `batches_per_element` consecutive batches (one compiled call's worth, see
    execution.block_train_step) in its first `rows` rows; the epoch's last element is padded to
    the same length, so that the step compiles for one shape. The rows of each batch do not
    depend on `batches_per_element`."""
    n = len(x)
    rows = batch_size * batches_per_element
    elements = math.ceil(n / rows)
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_indices(_):
        keys = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        )
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys)).batch(rows)

    def padded_block(indices):
        taken = tf.shape(indices)[0]
        indices = tf.pad(indices, [[0, rows - taken]])  # padding repeats row 0, never trained on
        return tf.gather(x_all, indices), tf.gather(y_all, indices), taken

    return (
        tf.data.Dataset.from_tensors(0)
        .flat_map(epoch_indices)
        .map(padded_block)
        .apply(tf.data.experimental.assert_cardinality(elements))
        .prefetch(2)
    )


def score(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    """Loss and metrics of `model` on (x, y) in ordered batches: the run's `test` record and
    `dnnlab evaluate` both compute them this way."""
    logs = model.evaluate(make_validation_dataset(x, y, batch_size), verbose=0, return_dict=True)
    return {k: float(v) for k, v in contract_order(logs).items()}


def evaluation_batch_size(spec: Spec) -> int:
    return max(spec.training.batch_size, 256)


def make_validation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int):
    """Validation batches in order. A dataset of our own rather than NumPy arrays: Keras's array
    adapter builds a parallel map that TensorFlow rewrites under op determinism and then logs a
    C++ `NodeDef mentions attribute use_unbounded_threadpool` error on stderr every epoch."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(2)


def contract_order(logs: dict[str, float]) -> dict[str, float]:
    """loss, the metrics, val_loss, the val_ metrics: the column order of metrics.csv."""
    train = [k for k in logs if not k.startswith("val_")]
    val = [k for k in logs if k.startswith("val_")]
    ordered = sorted(train, key=lambda k: k != "loss") + sorted(val, key=lambda k: k != "val_loss")
    return {k: logs[k] for k in ordered}
