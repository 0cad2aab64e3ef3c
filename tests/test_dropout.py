"""dnnlab's seeded dropout layers: their masks, their distributions, XLA, exact resume, MC dropout."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import start, write_spec
from test_train import KILLABLE, assert_same_run, train_interrupted_then_resumed

from dnnlab.inference import mc_dropout as mc
from dnnlab.model import build
from dnnlab.model.build import load_model
from dnnlab.model.layers import SeededAlphaDropout, SeededDropout
from dnnlab.spec.models import Spec, resolve
from dnnlab.training.callbacks.epoch_seeder import EpochSeeder, derived_seed
from dnnlab.training.execution import plan

WIDTH = 1000


def seeded(layer, seed: int, epoch: int, index: int = 0):
    """Set the layer's state as EpochSeeder does at the start of `epoch`."""
    layer.seed_generator.state.assign(np.array([derived_seed(seed, epoch, index), 0], dtype="int64"))
    return layer


def masks(layer, steps: int, rows: int = 4) -> list[np.ndarray]:
    ones = tf.ones((rows, WIDTH))
    return [layer(ones, training=True).numpy() != 0 for _ in range(steps)]


def test_masks_are_a_function_of_seed_epoch_and_step():
    layer = SeededDropout(0.3)
    first = masks(seeded(layer, 7, epoch=0), 3)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert all(np.array_equal(a, b) for a, b in zip(first, masks(seeded(layer, 7, epoch=0), 3)))
    next_epoch = masks(seeded(layer, 7, epoch=1), 3)
    assert not any(np.array_equal(a, b) for a, b in zip(first, next_epoch))
    other_seed = masks(seeded(layer, 8, epoch=0), 1)
    assert not np.array_equal(first[0], other_seed[0])


def test_xla_masks_are_threefry_and_a_function_of_seed_epoch_and_step_too():
    layer = SeededDropout(0.3)
    compiled = tf.function(lambda x: layer(x, training=True), jit_compile=True)

    def xla_masks(epoch):
        seeded(layer, 5, epoch)
        return [compiled(tf.ones((4, WIDTH))).numpy() != 0 for _ in range(2)]

    first = xla_masks(epoch=2)
    assert not np.array_equal(first[0], first[1])
    assert all(np.array_equal(a, b) for a, b in zip(first, xla_masks(epoch=2)))
    assert not any(np.array_equal(a, b) for a, b in zip(first, xla_masks(epoch=3)))
    assert not np.array_equal(first[0], masks(seeded(layer, 5, 2), 1)[0])  # Philox without XLA


@pytest.mark.parametrize("layer_class", [SeededDropout, SeededAlphaDropout])
def test_inference_is_the_identity(layer_class):
    x = np.random.default_rng(0).normal(size=(8, 30)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer_class(0.4)(x, training=False)), x)


def test_the_rate_is_honoured_and_kept_units_are_scaled():
    out = seeded(SeededDropout(0.2), 1, 0)(tf.ones((500, WIDTH)), training=True).numpy()
    assert abs((out == 0).mean() - 0.2) < 0.003  # 500,000 draws: the std of the fraction is 0.0006
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.8)}
    assert abs(out.mean() - 1.0) < 0.005


def test_alpha_dropout_keeps_the_mean_and_variance_of_selu_normal_input():
    x = tf.random.stateless_normal((500, WIDTH), seed=[1, 2])
    out = seeded(SeededAlphaDropout(0.2), 1, 0)(x, training=True).numpy()
    assert abs(out.mean()) < 0.01 and abs(out.var() - 1.0) < 0.01
    # Keras's formula: a dropped unit takes SELU's saturation value, transformed by a, b
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - 0.2) * (1 + 0.2 * alpha_p**2)) ** -0.5
    dropped = np.isclose(out, a * alpha_p - a * alpha_p * 0.2)
    assert abs(dropped.mean() - 0.2) < 0.003


@pytest.mark.parametrize("layer_class", [SeededDropout, SeededAlphaDropout])
def test_the_layers_round_trip_through_config_and_keras_files(layer_class, tmp_path):
    layer = layer_class(0.25, name="drop")
    again = layer_class.from_config(layer.get_config())
    assert (type(again), again.rate, again.name) == (layer_class, 0.25, "drop")
    model = keras.Sequential([keras.Input((3,)), layer, keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert type(loaded.layers[0]) is layer_class and loaded.layers[0].rate == 0.25


def spec(model: dict, **training) -> Spec:
    raw = {"data": {"dataset": "digits"}, "model": model, "training": training}
    return resolve(Spec.model_validate(raw), "classification", 10)


GERON_DROPOUT = {"hidden": [300, 100], "activation": "elu", "dropout": {"rate": 0.2}}


def test_the_builder_uses_the_seeded_layers_and_xla_takes_dropout_models():
    model = build.build_model(spec(GERON_DROPOUT), (28, 28))
    assert [type(layer) for layer in model.layers if "dropout" in layer.name] == [SeededDropout] * 3
    alpha = spec({**GERON_DROPOUT, "activation": "selu", "dropout": {"type": "alpha_dropout", "rate": 0.1}})
    assert isinstance(build.build_model(alpha, (28, 28)).layers[1], SeededAlphaDropout)
    assert plan(spec(GERON_DROPOUT), (28, 28), 1719).jit_compile
    assert plan(alpha, (28, 28), 1719).jit_compile
    assert not plan(spec(GERON_DROPOUT, epochs=2), (28, 28), 100).jit_compile  # too short to pay off
    assert not plan(spec({"hidden": [30], "activation": "rrelu"}), (28, 28), 1719).jit_compile


# --- exact resume ----------------------------------------------------------------------------

# The kill tests' dropout and batch-norm model, XLA forced on, for 3 epochs of 20 full batches
# (320 training rows): a partial batch or call would cost one more XLA compile, most of a run.
RESUMABLE = {
    **KILLABLE,
    "name": "dropout-xla",
    "data": {
        "dataset": {**KILLABLE["data"]["dataset"], "train": 370, "test": 20},
        "validation": 50,
    },
    "training": {"epochs": 3, "batch_size": 16, "jit_compile": True, "steps_per_execution": 10},
}


@pytest.fixture
def resumable_spec(tmp_path):
    return write_spec(tmp_path / "specs", RESUMABLE)


@pytest.mark.slow  # three XLA compiles of the train and test functions: 15-70 s on two cores
def test_an_interrupted_xla_dropout_run_resumes_bit_for_bit(resumable_spec, tmp_path, monkeypatch):
    uninterrupted = start(resumable_spec, tmp_path / "whole")
    assert uninterrupted.status == "completed"
    state = (uninterrupted.run_dir / "state.json").read_text()
    assert '"jit_compile": true' in state
    resumed = train_interrupted_then_resumed(monkeypatch, resumable_spec, tmp_path / "parts", [], 2)
    assert resumed.status == "completed"
    assert_same_run(resumed.run_dir, uninterrupted.run_dir)


def test_a_run_with_keras_dropout_from_an_older_dnnlab_still_resumes(resumable_spec, tmp_path, monkeypatch):
    """Older runs' .keras files hold keras.layers.Dropout: they load, and resume exactly."""
    monkeypatch.setitem(build.DROPOUTS, "dropout", lambda rate, n: keras.layers.Dropout(rate, name=n))
    overrides = ["training.jit_compile=false"]  # what older dnnlab versions chose for dropout
    uninterrupted = start(resumable_spec, tmp_path / "whole", overrides)
    resumed = train_interrupted_then_resumed(monkeypatch, resumable_spec, tmp_path / "parts", overrides, 2)
    assert type(load_model(resumed.run_dir / "model.keras").layers[2]) is keras.layers.Dropout
    assert_same_run(resumed.run_dir, uninterrupted.run_dir)


def test_epoch_seeder_reseeds_the_seeded_layers():
    model = build.build_model(spec(GERON_DROPOUT), (28, 28))
    seeder = EpochSeeder(11, tf.Variable(0, dtype="int64"))
    seeder.set_model(model)
    seeder.on_epoch_begin(3)
    states = [layer.seed_generator.state.numpy() for layer in model.layers if "dropout" in layer.name]
    assert [list(s) for s in states] == [[derived_seed(11, 3, i), 0] for i in range(3)]


# --- MC dropout ------------------------------------------------------------------------------


def mc_models():
    """The same tiny classifier with dnnlab's and with Keras's dropout layers, same weights."""

    def make(dropout):
        return keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(16, activation="elu"),
                dropout(0.3),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )

    ours, theirs = make(SeededDropout), make(keras.layers.Dropout)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def test_mc_dropout_samples_the_seeded_layers_like_keras_dropout():
    ours, theirs = mc_models()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    first = mc.sample(ours, x, samples=20, seed=4)
    assert (first.std > 0).all()  # the samples differ
    np.testing.assert_array_equal(first.mean, mc.sample(ours, x, samples=20, seed=4).mean)
    assert not np.array_equal(first.mean, mc.sample(ours, x, samples=20, seed=5).mean)
    reference = mc.sample(theirs, x, samples=20, seed=4)
    np.testing.assert_array_equal(first.mean, reference.mean)
    np.testing.assert_array_equal(first.std, reference.std)
