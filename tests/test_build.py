"""Spec -> Keras model: Géron's parameter counts, initializer variances and the RReLU layer."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dnnlab.model.layers  # noqa: F401  (registers RReLU for load_model)
from dnnlab.data.checked_spec import check_spec
from dnnlab.model.build import build_model, count_params, dense
from dnnlab.model.layers import RReLU
from dnnlab.spec.model import NamedInitializer, VarianceScaling


def params_of(write_spec, spec: dict) -> tuple[int, int]:
    """(total, non-trainable) parameters of the model a spec builds."""
    checked = check_spec(write_spec(spec))
    counts = count_params(build_model(checked.spec, checked.info.input_shape))
    assert counts.total == counts.trainable + counts.non_trainable
    return counts.total, counts.non_trainable


# --- parameter counts from Géron's model summaries --------------------------------------


def test_batch_norm_before_activation_drops_the_dense_biases(write_spec, images_data):
    """Same model as Géron's 271,346 one, minus the 300 + 100 biases batch norm replaces."""
    model = {
        "hidden": [300, 100],
        "activation": "elu",
        "input_normalization": "batch_norm",
        "normalization": {"type": "batch_norm", "position": "before"},
    }
    assert params_of(write_spec, {"data": images_data, "model": model}) == (270_946, 2_368)


def test_explicit_layers_count_like_the_compact_form(write_spec, images_data):
    layers = [
        {"type": "flatten"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 300, "activation": "elu", "initializer": "he_normal"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 100, "activation": "elu", "initializer": "he_normal"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    assert params_of(write_spec, {"data": images_data, "model": {"layers": layers}}) == (271_346, 2_368)


def test_explicit_batch_norm_before_activation(write_spec, images_data):
    layers = [
        {"type": "flatten"},
        {"type": "batch_norm"},
        {"type": "dense", "units": 300, "use_bias": False},
        {"type": "batch_norm"},
        {"type": "activation", "activation": "elu"},
        {"type": "dense", "units": 100, "use_bias": False},
        {"type": "batch_norm"},
        {"type": "elu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    assert params_of(write_spec, {"data": images_data, "model": {"layers": layers}}) == (270_946, 2_368)


@pytest.mark.parametrize(
    "activation, expected",
    [({"type": "leaky_relu", "alpha": 0.2}, 911), ("prelu", 961), ("rrelu", 911)],
    ids=["leaky_relu", "prelu", "rrelu"],
)
def test_regression_stack_30_20_1(write_spec, regression_data, activation, expected):
    """8 features -> 30 -> 20 -> 1; PReLU learns one slope per unit (30 + 20 more)."""
    spec = {"data": regression_data, "model": {"hidden": [30, 20], "activation": activation}}
    assert params_of(write_spec, spec) == (expected, 0)


def test_l2_regularized_300_100_10(write_spec, images_data):
    model = {
        "hidden": [300, 100],
        "activation": "elu",
        "initializer": "he_normal",
        "regularizer": {"type": "l2", "factor": 0.01},
    }
    assert params_of(write_spec, {"data": images_data, "model": model}) == (266_610, 0)


def test_dropout_adds_no_parameters(write_spec, images_data):
    model = {"hidden": [300, 100], "dropout": {"rate": 0.2}}
    assert params_of(write_spec, {"data": images_data, "model": model}) == (266_610, 0)


# --- initializers: Géron's variance table -----------------------------------------------


def kernel(initializer, fan_in: int = 1000, units: int = 1000) -> np.ndarray:
    """The kernel of a Dense(units) layer the builder makes, built on `fan_in` features."""
    keras.utils.set_random_seed(0)
    layer = dense(units, "probe", activation=None, initializer=initializer)
    layer.build((None, fan_in))
    return keras.ops.convert_to_numpy(layer.kernel)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize(
    "family, expected_variance",
    [("glorot", 1 / 1000), ("he", 2 / 1000), ("lecun", 1 / 1000)],
    ids=["glorot 1/fan_avg", "he 2/fan_in", "lecun 1/fan_in"],
)
def test_named_initializer_variance_matches_the_table(family, distribution, expected_variance):
    weights = kernel(NamedInitializer(type=f"{family}_{distribution}"))
    assert weights.shape == (1000, 1000)
    assert abs(weights.mean()) < 1e-3
    assert weights.var() == pytest.approx(expected_variance, rel=0.03)


@pytest.mark.parametrize(
    "name, expected_variance",
    [("glorot_uniform", 2 / (250 + 1000)), ("he_normal", 2 / 250), ("lecun_normal", 1 / 250)],
)
def test_initializers_use_the_right_fan(name, expected_variance):
    """On a 250 x 1000 kernel fan_in, fan_out and fan_avg differ, so a wrong fan shows."""
    weights = kernel(NamedInitializer(type=name), fan_in=250)
    assert weights.var() == pytest.approx(expected_variance, rel=0.03)


def test_variance_scaling_he_with_fan_avg_uniform():
    spec = VarianceScaling(type="variance_scaling", scale=2.0, mode="fan_avg", distribution="uniform")
    weights = kernel(spec, fan_in=250)
    assert weights.var() == pytest.approx(2 / ((250 + 1000) / 2), rel=0.03)
    limit = np.sqrt(3 * 2 / 625)  # uniform on [-limit, limit] has variance limit^2 / 3
    assert weights.max() <= limit and weights.min() >= -limit
    assert weights.max() > 0.99 * limit


# --- RReLU ---------------------------------------------------------------------------------

NEGATIVE = -np.ones((200, 50), dtype="float32")


def test_rrelu_training_slope_is_random_within_bounds():
    layer = RReLU(lower=0.1, upper=0.3, seed=1)
    slopes = -keras.ops.convert_to_numpy(layer(NEGATIVE, training=True))
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert slopes.std() > 0.03  # uniform on [0.1, 0.3] has std 0.058
    assert slopes.mean() == pytest.approx(0.2, abs=0.01)


def test_rrelu_inference_slope_is_the_mean_and_positives_pass():
    layer = RReLU(lower=0.1, upper=0.3)
    x = np.array([[-2.0, -1.0, 0.0, 1.5]], dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), [[-0.4, -0.2, 0.0, 1.5]], rtol=1e-6)
    trained = keras.ops.convert_to_numpy(layer(x, training=True))
    assert trained[0, 3] == 1.5 and trained[0, 2] == 0.0


def test_rrelu_rejects_lower_above_upper():
    with pytest.raises(ValueError, match="lower <= upper"):
        RReLU(lower=0.5, upper=0.1)


def test_rrelu_config_round_trip():
    layer = RReLU(lower=0.05, upper=0.25, seed=7, name="act")
    config = layer.get_config()
    clone = RReLU.from_config(config)
    assert (clone.lower, clone.upper, clone.seed, clone.name) == (0.05, 0.25, 7, "act")
    assert clone.get_config() == config


def test_model_with_rrelu_saves_and_loads(tmp_path):
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3), RReLU(lower=0.1, upper=0.2, name="rrelu")]
    )
    x = np.linspace(-3, 3, 20, dtype="float32").reshape(5, 4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("rrelu")
    assert isinstance(restored, RReLU)
    assert (restored.lower, restored.upper) == (0.1, 0.2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
