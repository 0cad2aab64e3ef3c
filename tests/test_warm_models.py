"""A sweep worker trains a later trial of a structure on the model it traced for an earlier one
(training.warm_models): the trial's numbers and files are those of a fresh model's."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import read_json, read_metrics, tiny_spec, without_seconds, write_spec

from dnnlab.data.checked_spec import check_spec
from dnnlab.model.build import load_model
from dnnlab.model.layers import SeededDropout
from dnnlab.training import lifecycle, warm_models


@pytest.fixture
def warm():
    keras.backend.clear_session()
    warm_models.enable()
    yield
    warm_models.disable()
    keras.backend.clear_session()


def spec_path(folder, name: str, rate: float, learning_rate: float, seed: int, activation="elu", xla=False):
    spec = tiny_spec(
        name="trial",  # a sweep's trials share the spec's name (the model's, in its config)
        seed=seed,
        model={"hidden": [16, 8], "activation": activation, "dropout": {"rate": rate}},
        training={
            "epochs": 3,
            "optimizer": {"type": "nadam", "learning_rate": learning_rate},
            "jit_compile": xla,
        },
    )
    return write_spec(folder, spec, f"{name}.yaml")


def train(path, runs, epochs=None):
    """One trial as a sweep worker trains it: start, then a fresh Keras session."""
    result = lifecycle.start(check_spec(path), runs, None, ["test"], progress=False, epochs=epochs)
    keras.backend.clear_session()  # as the worker does between trials
    return result.run_dir


def fresh(path, runs, epochs=None):
    """The same trial with no kept model: what `dnnlab train` does."""
    warm_models.disable()
    try:
        return train(path, runs, epochs)
    finally:
        warm_models.enable()


def weights(run_dir):
    return load_model(run_dir / "model.keras").get_weights()


def assert_same(a, b):
    assert without_seconds(read_metrics(a)) == without_seconds(read_metrics(b))
    assert all(np.array_equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))
    assert read_json(a / "run.json")["test"] == read_json(b / "run.json")["test"]


@pytest.mark.parametrize("xla", [False, True], ids=["plain", "xla"])
def test_a_trial_on_a_kept_model_equals_the_trial_on_a_fresh_one(tmp_path, warm, xla):
    train(spec_path(tmp_path, "first", 0.3, 0.01, seed=1, xla=xla), tmp_path / "warm")
    before = warm_models.reuses()
    second = spec_path(tmp_path, "second", 0.1, 0.003, seed=2, xla=xla)
    reused = train(second, tmp_path / "warm")
    assert warm_models.reuses() == before + 1
    assert_same(reused, fresh(second, tmp_path / "fresh"))
    saved = load_model(reused / "model.keras")  # its own rate and learning rate, not the first's
    assert [layer.rate for layer in saved.layers if isinstance(layer, SeededDropout)] == [0.1, 0.1, 0.1]
    assert saved.optimizer.learning_rate.numpy() == pytest.approx(0.003)


def test_a_paused_trial_continued_on_a_kept_model_equals_one_trained_without_pause(tmp_path, warm):
    paused = spec_path(tmp_path, "paused", 0.2, 0.01, seed=4)
    run = train(paused, tmp_path / "warm", epochs=1)
    train(spec_path(tmp_path, "other", 0.4, 0.02, seed=5), tmp_path / "warm")  # the kept model moves on
    before = warm_models.reuses()
    lifecycle.resume(run, 3, ["test"], progress=False)
    keras.backend.clear_session()
    assert warm_models.reuses() == before + 1
    assert_same(run, fresh(paused, tmp_path / "fresh"))


def test_other_structures_and_a_zero_rate_train_on_models_of_their_own(tmp_path, warm):
    train(spec_path(tmp_path, "elu", 0.3, 0.01, seed=1), tmp_path / "warm")
    before = warm_models.reuses()
    train(spec_path(tmp_path, "relu", 0.3, 0.01, seed=1, activation="relu"), tmp_path / "warm")
    train(spec_path(tmp_path, "none", 0.0, 0.01, seed=1), tmp_path / "warm")
    assert warm_models.reuses() == before


def test_dropout_rate_set_on_a_traced_layer_changes_its_masks():
    layer = SeededDropout(0.5, seed=1)
    step = keras.ops.ones((4, 1000))
    import tensorflow as tf

    call = tf.function(lambda x: layer(x, training=True))
    dropped_half = float(np.mean(call(step).numpy() == 0))
    layer.rate = 0.1
    dropped_tenth = float(np.mean(call(step).numpy() == 0))
    assert dropped_half == pytest.approx(0.5, abs=0.05)
    assert dropped_tenth == pytest.approx(0.1, abs=0.03)
    assert layer.get_config()["rate"] == 0.1 and layer.weights == []
