"""How a run executes: steps per compiled call, XLA, and TensorFlow's thread pools.

The choices are made once per run from the spec (each can be overridden there), recorded in
state.json, and reapplied on resume, so a resumed run executes exactly like the original and
gives the same numbers bit for bit. Measurements behind the automatic choices are in
benchmarks/RESULTS.md (2-core CPU, Géron's batch-norm model at batch 32):

- a few hundred steps per compiled call instead of one: the loop is dispatch-bound. The call
  trains a block of consecutive batches in a loop of its own (`block_train_step`) rather than
  Keras's loop, which launched the compiled step once per batch: about a third less CPU time;
- XLA: 1.0 s an epoch against 2.0 s without, when the model has no random layer. Keras's
  random-number generation under XLA made epochs 2.5-5x slower, so models with a layer drawing
  from it (RReLU; Keras's own dropout, in runs of older dnnlab versions, whose recorded plan
  resume reuses) stay without it. dnnlab's dropout layers draw Threefry masks that XLA compiles
  well (dnnlab.model.layers.SeededDropout) and do not count.
  Compiling costs seconds up front (about 3 s for a one-layer net on digits, whose whole run
  took 1.6 s without XLA), so a run of fewer than XLA_MIN_STEPS optimizer steps stays without;
- without XLA, one thread per pool for small steps: as fast as the default pools on an idle
  machine with 40% less CPU, and much faster when other work shares the cores. With XLA and
  blocks of batches, one thread used less CPU (1.75 against 2.05 s an epoch) but on an idle
  machine the default pools took 1.4 s an epoch against 2.0 s, so XLA keeps them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dnnlab.errors import RunDirError
from dnnlab.spec.model import CompactModel
from dnnlab.spec.models import Spec

log = logging.getLogger("dnnlab")

TARGET_STEPS_PER_EXECUTION = 200
SMALL_STEP_MACS = 300_000_000  # multiply-adds per batch below which one thread is enough
# Optimizer steps in a run below which XLA's compile time outweighs what it saves (about 1 ms a
# step on Géron's batch-norm model, a few seconds of compiling).
XLA_MIN_STEPS = 5_000


@dataclass(frozen=True)
class Execution:
    steps_per_execution: int
    jit_compile: bool
    intra_op_threads: int  # 0: TensorFlow's default (all cores)
    inter_op_threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Execution:
        """The plan state.json records; a missing or damaged record is one RunDirError line (the
        plan decides the compiled program, so resuming on another one would not be exact)."""
        types = {
            "steps_per_execution": int,
            "jit_compile": bool,
            "intra_op_threads": int,
            "inter_op_threads": int,
        }
        valid = (
            isinstance(data, dict)
            and set(data) == set(types)
            and all(type(data[key]) is kind for key, kind in types.items())
            and data["steps_per_execution"] >= 1
            and data["intra_op_threads"] >= 0
            and data["inter_op_threads"] >= 0
        )
        if not valid:
            raise RunDirError(
                "state.json: its `execution` record is missing or damaged (expected "
                f"{', '.join(types)}); restore state.json from a copy of the run"
            )
        return cls(**data)


def plan(spec: Spec, input_shape: tuple[int, ...], steps_per_epoch: int, gpu: bool = False) -> Execution:
    """The execution settings for a run: the spec's where it sets them, measured defaults else.
    `gpu`: a GPU is visible; automatic XLA is then left to Keras's own rule (off under op
    determinism), since only the CPU case was checked here."""
    training = spec.training
    if training.jit_compile != "auto":
        jit = training.jit_compile
    else:
        long_enough = steps_per_epoch * training.epochs >= XLA_MIN_STEPS
        jit = long_enough and not has_slow_random_layers(spec) and not (gpu and training.deterministic)
    if training.intra_op_threads != "auto":
        threads = (int(training.intra_op_threads), 0)
    elif not jit and dense_macs_per_step(spec, input_shape) < SMALL_STEP_MACS:
        threads = (1, 1)
    else:
        threads = (0, 0)
    return Execution(
        steps_per_execution=steps_per_execution(training.steps_per_execution, steps_per_epoch),
        jit_compile=bool(jit),
        intra_op_threads=threads[0],
        inter_op_threads=threads[1],
    )


def steps_per_execution(setting: str | int, steps_per_epoch: int) -> int:
    """'auto': a divisor of the epoch's steps near a few hundred, so every compiled call stays
    inside one epoch and the progress bar still moves several times an epoch."""
    if setting != "auto":
        return max(1, min(int(setting), steps_per_epoch))
    if steps_per_epoch <= TARGET_STEPS_PER_EXECUTION:
        return steps_per_epoch
    fitting = [d for d in range(1, TARGET_STEPS_PER_EXECUTION + 1) if steps_per_epoch % d == 0]
    best = max(fitting)
    # A step count without a useful divisor (a prime) takes a partial last call, which is
    # harmless: each epoch has its own iterator (see train.make_train_dataset).
    return best if best >= TARGET_STEPS_PER_EXECUTION // 4 else TARGET_STEPS_PER_EXECUTION


def has_slow_random_layers(spec: Spec) -> bool:
    """Whether training draws random numbers through Keras's generator, slow under XLA (RReLU).
    Dropout and alpha dropout, built as dnnlab's Threefry layers, do not count."""
    model = spec.model
    if isinstance(model, CompactModel):
        return model.activation.type == "rrelu"
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if layer.type == "rrelu" or (activation is not None and activation.type == "rrelu"):
            return True
    return False


def dense_macs_per_step(spec: Spec, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the dense layers for one batch: the size of one training step."""
    model = spec.model
    if isinstance(model, CompactModel):
        units = [*model.hidden, model.output.units or 1]
    else:
        units = [layer.units for layer in model.layers if layer.type == "dense"]
    width, macs = int(np.prod(input_shape)), 0
    for unit in units:
        macs += width * unit
        width = unit
    return macs * spec.training.batch_size


def apply_threads(execution: Execution) -> None:
    """Size TensorFlow's thread pools. Possible only before its runtime starts; later in the
    same process (tests, notebooks) the first setting stays and this says so at debug level."""
    import tensorflow as tf

    threading = tf.config.threading
    wanted = (execution.intra_op_threads, execution.inter_op_threads)
    current = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    if wanted == current:
        return
    try:
        threading.set_intra_op_parallelism_threads(wanted[0])
        threading.set_inter_op_parallelism_threads(wanted[1])
    except RuntimeError:
        log.debug("TensorFlow's thread pools are already sized for this process: %s", current)


def apply_to_model(model: Any, execution: Execution, batch_size: int, train_rows: int) -> None:
    """Run `execution.steps_per_execution` optimizer steps per compiled call, with XLA or not, on
    a compiled or loaded model that trains on `train_rows` rows an epoch.

    The training data comes in blocks of that many consecutive batches (train.make_train_dataset)
    and the train step loops over a block's batches inside the compiled call (`block_train_step`).
    Keras's own `steps_per_execution` loop launches the compiled step once per batch, passing
    every model and optimizer variable in and out each time; on Géron's batch-norm model at
    batch 32 that launch cost a quarter of the epoch. Keras therefore sees one step per block.

    Keras turns XLA off whenever op determinism is on, because some ops have no deterministic
    XLA kernel on GPUs. The layers dnnlab builds compile to deterministic CPU code (checked:
    identical losses and weights across processes, and resumed runs equal uninterrupted ones),
    so the choice is set on the model directly.
    """
    from dnnlab.model.keras_private import set_jit_compile

    model.steps_per_execution = 1
    model.train_step = block_train_step(model, batch_size, execution.jit_compile, train_rows % batch_size)
    set_jit_compile(model, execution.jit_compile)  # Keras's setter would refuse under determinism
    model.train_function = model.test_function = model.predict_function = None


def block_train_step(model: Any, batch_size: int, jit_compile: bool, last_batch_rows: int):
    """A train step for a block `(x, y, rows)`: Keras's own step on each consecutive `batch_size`
    of the first `rows` rows in order, the epoch's last batch `last_batch_rows` long when that is
    not 0, exactly as a per-batch loop would train. Returns the metrics after the block's last
    batch, as Keras's loop reports them after its last step.

    Every block of an epoch has the same number of rows (the last one padded, see
    train.make_train_dataset), so the step is traced once and XLA compiles it once: a last block
    of its own shape cost a second compile, 4 s of Géron's batch-norm model's first epoch.
    Without XLA one loop takes every batch, the last one shorter, so Keras's step is traced once
    (0.5 s of the quick start); XLA needs each slice's size known when it compiles, so there the
    loop takes the full batches and a branch of its own the short last one.
    """
    import tensorflow as tf

    step = type(model).train_step

    def rows_from(tensor, start, size):
        # Static sizes: XLA slices at a computed start only when the size is known.
        rest = [-1 if d is None else d for d in tensor.shape[1:]]
        return tf.slice(tensor, [start] + [0] * len(rest), [size, *rest])

    def train_on(x, y, start, size):
        step(model, (rows_from(x, start, size), rows_from(y, start, size)))

    def train_block(data):
        x, y, rows = data
        if not jit_compile:
            batches = (rows + batch_size - 1) // batch_size

            def any_batch(i):
                start = i * batch_size
                train_on(x, y, start, tf.minimum(batch_size, rows - start))
                return (i + 1,)

            tf.while_loop(lambda i: i < batches, any_batch, (tf.constant(0),))
            return model.get_metrics_result()

        full = rows // batch_size

        def full_batch(i):
            train_on(x, y, i * batch_size, batch_size)
            return (i + 1,)

        tf.while_loop(lambda i: i < full, full_batch, (tf.constant(0),))
        if last_batch_rows:

            def last_batch():
                # Gathered, not sliced: XLA would take a slice's start as a compile-time constant
                # and so compile once per value of `rows`.
                taken = full * batch_size + tf.range(last_batch_rows)
                step(model, (tf.gather(x, taken), tf.gather(y, taken)))
                return tf.constant(0)

            tf.cond(rows > full * batch_size, last_batch, lambda: tf.constant(0))
        return model.get_metrics_result()

    return train_block
