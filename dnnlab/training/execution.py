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
  took 1.6 s without XLA), and what XLA saves a step depends on the step's size, so
  `jit_compile: auto` predicts both from the step (`predict_costs`, fitted on measurements) and
  takes XLA when the planned epochs finish sooner with it; a step compiled before and kept in
  the persistent XLA cache (dnnlab.xla_cache) costs nothing to compile;
- without XLA, one thread per pool for small steps: as fast as the default pools on an idle
  machine with 40% less CPU, and much faster when other work shares the cores. With XLA and
  blocks of batches, one thread used less CPU (1.75 against 2.05 s an epoch) but on an idle
  machine the default pools took 1.4 s an epoch against 2.0 s, so XLA keeps them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from dnnlab.errors import RunDirError
from dnnlab.spec.model import CompactModel
from dnnlab.spec.models import Spec

log = logging.getLogger("dnnlab")

TARGET_STEPS_PER_EXECUTION = 200
# Multiply-adds per batch below which one thread is enough. Checked near idle on 2 cores with the
# batch-norm model without XLA (`dnnlab train` -o training.intra_op_threads=1 against =0, 4 epochs
# of 20,000 rows, twice each): batch 256 (68M) 0.41 s an epoch on one thread, 0.50 on all; batch
# 1024 (272M) 0.34-0.35 against 0.34-0.38.
SMALL_STEP_MACS = 300_000_000

# The cost model `jit_compile: auto` weighs XLA with: seconds of one optimizer step without and
# with XLA, from the step's layers (dense, normalization, dropout: each a few ops, launched apart
# without XLA, fused with it) and its dense multiply-adds (MACs); and XLA's compile, from the
# layers. Measured by `PYTHONPATH=. python benchmarks/plan_costs.py --epochs 4 --rounds 1`:
# `dnnlab train` with XLA off and on, a fresh process each, the persistent XLA cache off, 30,000
# synthetic rows (1,223 for a model of the quick start's size), on the 2-core machine near idle
# (1-minute load 0.8-1.0), December 2026. A step is the median of epochs 3..4 over the epoch's
# steps; the compile is XLA's extra first epoch less the same without XLA:
#
#   case                  layers   MACs/step    ms/step off   ms/step on   compile s
#   batch-norm, b32         6      8,489,600      2.304         0.996        2.10
#   batch-norm, b256        6     67,916,800      6.212         3.466        2.31
#   batch-norm, b1024       6    271,667,200     20.100        11.967        2.41
#   dropout, b32            6      8,489,600      1.671         0.884        1.76
#   quick-start size, b32   3        526,336      1.538         1.436        1.19
#
# Least squares over the first four rows (per layer and per MAC, no intercept): 0.240 ms a layer
# and 0.0688 ns a MAC without XLA, 0.099 ms and 0.0419 ns with it (XLA fuses each layer's ops and
# runs these products faster); the compile is the median per layer, 0.385 s. The same script at a
# 1-minute load of 9-11 measured every figure 2-4x higher and XLA's products no faster, so on a
# busy machine the plan errs towards XLA; its choice depends on the ratios, which load changes less.
PLAIN_STEP = (0.0, 2.40e-4, 6.88e-11)  # seconds: per step, per layer and step, per MAC
XLA_STEP = (0.0, 9.9e-5, 4.19e-11)
COMPILE = (0.0, 0.385)  # seconds: fixed, per layer


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


@dataclass(frozen=True)
class Costs:
    """Predicted seconds of a run's parts, for the choice of XLA."""

    step_plain: float
    step_xla: float
    compile: float  # 0 when the compiled step is in the persistent cache

    def run_seconds(self, steps: int, jit: bool) -> float:
        return self.compile + steps * self.step_xla if jit else steps * self.step_plain


def layer_count(spec: Spec) -> int:
    """Dense, normalization and dropout layers: each is a few ops of the step, dispatched apart
    without XLA and fused with it."""
    model = spec.model
    if isinstance(model, CompactModel):
        hidden = len(model.hidden)
        norms = hidden * (model.normalization.type != "none") + (model.input_normalization.type != "none")
        drops = 0 if model.dropout is None else hidden + (model.dropout.where == "all")
        return hidden + 1 + norms + drops
    return len(model.layers)


def predict_costs(spec: Spec, input_shape: tuple[int, ...], cached: bool = False) -> Costs:
    """The cost model's seconds for this spec's step (see MEASURED)."""
    macs, layers = dense_macs_per_step(spec, input_shape), layer_count(spec)
    plain = PLAIN_STEP[0] + PLAIN_STEP[1] * layers + PLAIN_STEP[2] * macs
    xla = XLA_STEP[0] + XLA_STEP[1] * layers + XLA_STEP[2] * macs
    compile_ = 0.0 if cached else COMPILE[0] + COMPILE[1] * layers
    return Costs(max(plain, 1e-6), max(xla, 1e-6), max(compile_, 0.0))


def compiled_step_key(spec: Spec, input_shape: tuple[int, ...], steps_per_epoch: int) -> str:
    """What decides the compiled train step's program: the model, the training settings but the
    epochs and XLA's own setting, the input shape and the epoch's steps (they set the block's
    shape)."""
    training = spec.training.model_dump(mode="json", exclude={"epochs", "jit_compile"})
    return repr((spec.model.model_dump(mode="json"), training, tuple(input_shape), steps_per_epoch))


@dataclass(frozen=True)
class Choice:
    """The plan and why, in one line for the user (None when the spec decided)."""

    execution: Execution
    reason: str | None


def plan(spec: Spec, input_shape: tuple[int, ...], steps_per_epoch: int, gpu: bool = False) -> Execution:
    """The execution settings for a run: the spec's where it sets them, measured defaults else."""
    return choose(spec, input_shape, steps_per_epoch, gpu).execution


def choose(
    spec: Spec, input_shape: tuple[int, ...], steps_per_epoch: int, gpu: bool = False, cached: bool = False
) -> Choice:
    """`plan` with its reason. `jit_compile: auto` takes XLA when the cost model says the
    planned epochs finish sooner with it, compile included (nothing to compile when `cached`).
    `gpu`: a GPU is visible; automatic XLA is then left to Keras's own rule (off under op
    determinism), since only the CPU case was measured here."""
    training = spec.training
    reason = None
    if training.jit_compile != "auto":
        jit = training.jit_compile
    elif has_slow_random_layers(spec):
        jit, reason = False, "XLA off: RReLU draws from Keras's generator, slow under XLA"
    elif gpu:
        jit = not training.deterministic
        reason = f"XLA {'on' if jit else 'off'}: on a GPU, Keras's rule (off under op determinism)"
    else:
        costs = predict_costs(spec, input_shape, cached)
        steps = steps_per_epoch * training.epochs
        saved = (costs.step_plain - costs.step_xla) * steps_per_epoch
        jit = costs.run_seconds(steps, True) < costs.run_seconds(steps, False)
        compile_ = "compiled step cached" if cached else f"compile ~{costs.compile:.1f} s"
        if saved <= 0:
            reason = f"XLA off: a step of this size is no faster with it ({compile_})"
        else:
            verb = "saves" if jit else "would save only"
            reason = (
                f"XLA {'on' if jit else 'off'}: {compile_}, {verb} ~{saved:.2f} s/epoch "
                f"over {training.epochs} epoch{'s' if training.epochs != 1 else ''}"
            )
    if training.intra_op_threads != "auto":
        threads = (int(training.intra_op_threads), 0)
    elif not jit and dense_macs_per_step(spec, input_shape) < SMALL_STEP_MACS:
        threads = (1, 1)
    else:
        threads = (0, 0)
    execution = Execution(
        steps_per_execution=steps_per_execution(training.steps_per_execution, steps_per_epoch),
        jit_compile=bool(jit),
        intra_op_threads=threads[0],
        inter_op_threads=threads[1],
    )
    return Choice(execution, reason)


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


@contextlib.contextmanager
def without_xla(model: Any, execution: Execution, batch_size: int, train_rows: int) -> Iterator[None]:
    """Run `model` without XLA inside the block (scoring it as `dnnlab evaluate` does), then give
    it back the compiled program it trains with: a sweep worker trains later trials on the same
    model (training.warm_models), and compiling it again would cost what keeping it saves."""
    if not execution.jit_compile:
        yield
        return
    from dnnlab.model.keras_private import set_jit_compile

    compiled = (model.train_step, model.train_function, model.test_function, model.predict_function)
    apply_to_model(model, replace(execution, jit_compile=False), batch_size, train_rows)
    try:
        yield
    finally:
        model.train_step, model.train_function, model.test_function, model.predict_function = compiled
        set_jit_compile(model, True)


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
