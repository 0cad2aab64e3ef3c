"""The execution plan: what dnnlab chooses on its own, what a spec overrides, what resume reuses."""

from __future__ import annotations

import re

import pytest

from dnnlab.spec.models import Spec, resolve
from dnnlab.training.execution import (
    Execution,
    choose,
    dense_macs_per_step,
    has_slow_random_layers,
    plan,
    predict_costs,
    steps_per_execution,
)


def spec(model: dict, **training) -> Spec:
    raw = {"data": {"dataset": "digits"}, "model": model, "training": training}
    return resolve(Spec.model_validate(raw), "classification", 10)


GERON_BN = {"hidden": [300, 100], "activation": "elu", "normalization": "batch_norm"}


def test_models_without_random_layers_get_xla_with_every_core():
    chosen = plan(spec(GERON_BN), (28, 28), 1719)
    assert chosen == Execution(
        steps_per_execution=191, jit_compile=True, intra_op_threads=0, inter_op_threads=0
    )


DROPOUT_MODELS = [
    {**GERON_BN, "dropout": {"rate": 0.2}},
    {**GERON_BN, "dropout": {"type": "alpha_dropout", "rate": 0.1}},
    {
        "layers": [
            {"type": "dense", "units": 30},
            {"type": "dropout", "rate": 0.5},
            {"type": "dense", "units": 10},
        ]
    },
]


@pytest.mark.parametrize(
    "model",
    [
        {"hidden": [30], "activation": "rrelu"},
        {"layers": [{"type": "dense", "units": 30, "activation": "rrelu"}, {"type": "dense", "units": 10}]},
    ],
)
def test_slow_random_layers_keep_the_graph_executor_with_one_thread_per_pool(model):
    """RReLU draws from Keras's generator, slow under XLA."""
    chosen = plan(spec(model), (64,), 1000)
    assert has_slow_random_layers(spec(model))
    assert not chosen.jit_compile
    assert (chosen.intra_op_threads, chosen.inter_op_threads) == (1, 1)


@pytest.mark.parametrize("model", DROPOUT_MODELS)
def test_dropout_models_get_xla_on_long_runs(model):
    """dnnlab's dropout layers draw Threefry masks, which XLA compiles well."""
    assert not has_slow_random_layers(spec(model))
    assert plan(spec(model), (64,), 1000).jit_compile
    assert not plan(spec(model), (64,), 100).jit_compile  # 1,000 steps: not worth compiling


def test_large_steps_use_all_cores_and_xla():
    """Measured near idle: this model's epoch took 3.85 s with XLA and 4.76 s without, both on
    every core, so a 10-epoch run of it earns the compile back."""
    big = spec({"hidden": [2048, 2048], "dropout": {"rate": 0.5}}, batch_size=512)
    assert dense_macs_per_step(big, (784,)) > 300_000_000
    chosen = plan(big, (784,), 100)
    assert (chosen.jit_compile, chosen.intra_op_threads) == (True, 0)
    small_steps = spec(GERON_BN, batch_size=256, jit_compile=False)
    assert plan(small_steps, (28, 28), 215).intra_op_threads == 1  # one thread is faster there


def test_the_spec_overrides_every_choice():
    chosen = plan(
        spec(GERON_BN, jit_compile=False, intra_op_threads=2, steps_per_execution=7), (28, 28), 1719
    )
    assert chosen == Execution(
        steps_per_execution=7, jit_compile=False, intra_op_threads=2, inter_op_threads=0
    )


def test_automatic_xla_is_left_to_keras_on_a_gpu_under_determinism():
    assert not plan(spec(GERON_BN), (28, 28), 1719, gpu=True).jit_compile
    assert plan(spec(GERON_BN, deterministic=False), (28, 28), 1719, gpu=True).jit_compile


def test_xla_is_taken_when_the_planned_epochs_finish_sooner_with_it():
    """The cost model's break-even: fewer steps than compile / (saving a step) stay without
    XLA, more take it, and a step compiled before (in the persistent cache) always takes it."""
    costs = predict_costs(spec(GERON_BN), (28, 28))
    assert costs.step_xla < costs.step_plain and costs.compile > 0
    even = costs.compile / (costs.step_plain - costs.step_xla)
    short, long = int(even / 2), int(even * 2) + 1
    assert not plan(spec(GERON_BN, epochs=1), (28, 28), short).jit_compile
    assert plan(spec(GERON_BN, epochs=1), (28, 28), long).jit_compile
    assert plan(spec(GERON_BN, epochs=2), (28, 28), long // 2 + 1).jit_compile  # epochs count
    assert choose(spec(GERON_BN, epochs=1), (28, 28), short, cached=True).execution.jit_compile
    assert plan(spec(GERON_BN, epochs=1, jit_compile=True), (28, 28), short).jit_compile


def test_bigger_batches_gain_less_from_xla_so_short_runs_of_them_stay_without():
    """XLA saves the ops' launches, per step: an epoch of the same rows in fewer, bigger
    steps saves less, so at batch 1024 a short run of Géron's model stays without XLA where
    batch 32 takes it; a longer one earns the compile back."""
    small = predict_costs(spec(GERON_BN, batch_size=32), (28, 28))
    big = predict_costs(spec(GERON_BN, batch_size=1024), (28, 28))
    assert big.step_xla / big.step_plain > small.step_xla / small.step_plain
    assert big.compile == small.compile  # the program's size, not the batch's
    assert plan(spec(GERON_BN, batch_size=32, epochs=3), (28, 28), 1719).jit_compile
    assert not plan(spec(GERON_BN, batch_size=1024, epochs=3), (28, 28), 54).jit_compile
    assert plan(spec(GERON_BN, batch_size=1024, epochs=20), (28, 28), 54).jit_compile


def test_the_reason_says_what_was_chosen_and_why():
    long = choose(spec(GERON_BN, epochs=20), (28, 28), 1719).reason
    assert re.fullmatch(r"XLA on: compile ~\d+\.\d s, saves ~\d+\.\d\d s/epoch over 20 epochs", long), long
    short = choose(spec(GERON_BN, epochs=1), (28, 28), 5).reason
    assert re.fullmatch(
        r"XLA off: compile ~\d+\.\d s, would save only ~\d+\.\d\d s/epoch over 1 epoch", short
    )
    cached = choose(spec(GERON_BN, epochs=1), (28, 28), 5, cached=True).reason
    assert cached.startswith("XLA on: compiled step cached, saves ~")
    assert "RReLU" in choose(spec({"hidden": [30], "activation": "rrelu"}), (64,), 1000).reason
    assert choose(spec(GERON_BN, jit_compile=False), (28, 28), 1719).reason is None


@pytest.mark.parametrize(
    "steps, expected",
    [(39, 39), (200, 200), (1719, 191), (430, 86), (215, 200), (10_007, 200)],
)
def test_steps_per_execution_divides_the_epoch_when_it_can(steps, expected):
    assert steps_per_execution("auto", steps) == expected


def test_execution_round_trips_through_state_json():
    chosen = plan(spec(GERON_BN), (28, 28), 1719)
    assert Execution.from_dict(chosen.to_dict()) == chosen


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_blocks_of_batches_train_exactly_like_one_batch_per_call(jit_compile):
    """A compiled call over a block of batches (the epoch's last block ending in a shorter batch)
    gives the losses and weights of Keras's own fit, one batch per call, on the same batches."""
    import keras
    import numpy as np
    import tensorflow as tf

    from dnnlab.model.keras_private import set_jit_compile
    from dnnlab.training.execution import apply_to_model
    from dnnlab.training.pipeline import make_train_dataset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(150, 6)).astype("float32"), rng.integers(0, 3, 150)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def fitted(batches_per_call: int) -> tuple[list[float], list[np.ndarray]]:
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="elu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        model.compile(optimizer="nadam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        # 150 rows: 9 batches of 16 and one of 6; blocks of 4 batches: 64, 64 and 22 rows (padded to 64).
        data = make_train_dataset(x, y, 16, 3, epoch, batches_per_call)
        if batches_per_call == 1:
            set_jit_compile(model, jit_compile)  # Keras's own train step, on the batches unpadded
            data = data.map(lambda x, y, rows: (x[:rows], y[:rows]))
        else:
            apply_to_model(
                model, Execution(batches_per_call, jit_compile, 0, 0), batch_size=16, train_rows=150
            )
        history = model.fit(data, epochs=2, verbose=0, shuffle=False)
        return history.history["loss"] + history.history["accuracy"], model.get_weights()

    logs, weights = fitted(1)
    block_logs, block_weights = fitted(4)
    # Without XLA the very same kernels run; XLA fuses a loop's body differently (float32 rounding).
    tolerance = 1e-6 if jit_compile else 0
    np.testing.assert_allclose(block_logs, logs, rtol=tolerance)
    for block, reference in zip(block_weights, weights):
        np.testing.assert_allclose(block, reference, rtol=tolerance, atol=tolerance)


def test_every_block_of_an_epoch_has_one_shape():
    """XLA compiles once per shape: the epoch's last block is padded to the others' length and
    says how many of its rows are real; every row is taken once, in the epoch's order."""
    import numpy as np
    import tensorflow as tf

    from dnnlab.training.pipeline import make_train_dataset

    x, y = np.arange(150, dtype="float32").reshape(150, 1), np.arange(150)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    blocks = list(make_train_dataset(x, y, 16, 3, epoch, 4).as_numpy_iterator())
    assert [block[0].shape for block in blocks] == [(64, 1)] * 3
    assert [int(block[2]) for block in blocks] == [64, 64, 22]
    taken = np.concatenate([block[1][: block[2]] for block in blocks])
    assert sorted(taken) == list(range(150)) and list(taken) != list(range(150))
    unblocked = np.concatenate(
        [b[1][: b[2]] for b in make_train_dataset(x, y, 16, 3, epoch, 1).as_numpy_iterator()]
    )
    np.testing.assert_array_equal(unblocked, taken)
