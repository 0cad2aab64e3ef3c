"""Monte Carlo dropout prediction: correctness against Keras's own layers, files and metrics."""

import csv
import math

import keras
import numpy as np
import pytest

from dnnlab.errors import DnnlabError, PredictError
from dnnlab.inference import calibration
from dnnlab.inference import mc_dropout as mc

FEATURES = 6
CLASSES = 3


def _classifier(rate=0.3, dropout=keras.layers.Dropout, batch_norm=True):
    """A tiny chain with batch norm whose moving statistics are far from their initial values."""
    keras.utils.set_random_seed(1)
    layers = [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="elu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [dropout(rate), keras.layers.Dense(8, activation="selu"), dropout(rate)]
    layers.append(keras.layers.Dense(CLASSES, activation="softmax"))
    model = keras.Sequential(layers)
    if batch_norm:
        bn = model.layers[1]
        bn.moving_mean.assign(np.linspace(-1, 1, 16).astype("float32"))
        bn.moving_variance.assign(np.linspace(0.5, 3, 16).astype("float32"))
    return model


def _regressor():
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )


def _inputs(n=7, seed=0):
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype("float32")


def _slow_reference(model, x, samples):
    """Géron's loop, done right: dropout layers in training mode, everything else inference."""
    outputs = []
    for _ in range(samples):
        h = x
        for layer in model.layers:
            h = layer(h, training=isinstance(layer, (keras.layers.Dropout, keras.layers.AlphaDropout)))
        outputs.append(keras.ops.convert_to_numpy(h))
    return np.stack(outputs)


@pytest.fixture
def small_calls(monkeypatch):
    """Few rows per graph call, so a prediction spans several instance batches and sample chunks."""
    monkeypatch.setattr(mc, "ROWS_PER_CALL", 20)


@pytest.mark.parametrize("dropout", [keras.layers.Dropout, keras.layers.AlphaDropout])
def test_rate_zero_equals_the_deterministic_prediction_exactly(dropout, small_calls):
    model = _classifier(rate=0.0, dropout=dropout)
    x = _inputs(9)
    result = mc.sample(model, x, samples=13, seed=0)
    np.testing.assert_array_equal(result.mean, model.predict(x, verbose=0))
    np.testing.assert_array_equal(result.mean, mc.deterministic_outputs(model, x))
    np.testing.assert_array_equal(result.std, np.zeros_like(result.std))
    np.testing.assert_allclose(result.mutual_information, 0.0, atol=1e-6)


def test_weights_and_moving_statistics_are_unchanged():
    model = _classifier()
    before = [w.copy() for w in model.get_weights()]
    mc.sample(model, _inputs(), samples=50, seed=3)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("dropout", [keras.layers.Dropout, keras.layers.AlphaDropout])
def test_agrees_with_the_slow_reference_within_monte_carlo_error(dropout):
    model = _classifier(rate=0.3, dropout=dropout)
    x = _inputs(5)
    samples = 400
    reference = _slow_reference(model, x, samples)
    result = mc.sample(model, x, samples=samples, seed=4)
    standard_error = np.sqrt(2 / samples) * np.maximum(reference.std(axis=0), result.std)
    assert np.all(np.abs(result.mean - reference.mean(axis=0)) <= 5 * standard_error + 1e-6)
    # The std of a std estimate is about std / sqrt(2 S); allow a wide margin.
    np.testing.assert_allclose(result.std, reference.std(axis=0), rtol=0.3, atol=1e-3)
    # And the MC mean really differs from the deterministic prediction: dropout was on.
    assert not np.allclose(result.mean, keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-3)


def test_results_across_batches_and_sample_chunks_stay_correct(small_calls):
    model = _classifier()
    x = _inputs(6)
    chunked = mc.sample(model, x, samples=300, seed=5)
    whole = mc.sample(model, x, samples=300, seed=5, batch_size=6)
    standard_error = np.sqrt(2 / 300) * np.maximum(chunked.std, whole.std)
    assert np.all(np.abs(chunked.mean - whole.mean) <= 5 * standard_error + 1e-6)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=0.3, atol=1e-3)


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    model = _classifier()
    x = _inputs()
    first = mc.save(mc.sample(model, x, samples=20, seed=7), tmp_path / "a.npz")
    second = mc.save(mc.sample(model, x, samples=20, seed=7), tmp_path / "b.npz")
    other = mc.save(mc.sample(model, x, samples=20, seed=8), tmp_path / "c.npz")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    with np.load(first) as arrays:
        assert sorted(arrays.files) == sorted(["mean", "std", "predicted", "entropy", "mutual_information"])


def test_unseeded_result_records_a_seed_that_reproduces_it():
    model = _classifier()
    x = _inputs()
    result = mc.sample(model, x, samples=10)
    np.testing.assert_array_equal(result.mean, mc.sample(model, x, samples=10, seed=result.seed).mean)


def test_classification_arrays_shapes_and_information_bounds():
    result = mc.sample(_classifier(rate=0.5), _inputs(7), samples=30, seed=9)
    assert result.task == "classification"
    assert result.mean.shape == result.std.shape == (7, CLASSES)
    assert result.predicted.shape == result.entropy.shape == result.mutual_information.shape == (7,)
    np.testing.assert_allclose(result.mean.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(result.predicted, result.mean.argmax(axis=1))
    assert np.all(result.entropy >= 0) and np.all(result.entropy <= math.log(CLASSES) + 1e-6)
    assert np.all(result.mutual_information >= 0)
    assert np.all(result.mutual_information <= result.entropy)
    assert result.mutual_information.max() > 0


def test_regression_has_mean_and_std_only(tmp_path):
    model = _regressor()
    x = _inputs(4)
    result = mc.sample(model, x, samples=25, seed=0)
    assert result.task == "regression"
    assert list(result.arrays()) == ["mean", "std"]
    assert result.mean.shape == result.std.shape == (4, 1)
    assert result.predicted is None and result.entropy is None
    with np.load(mc.save(result, tmp_path / "r.npz")) as arrays:
        assert sorted(arrays.files) == ["mean", "std"]
    y = np.arange(4, dtype="float32")
    scores = mc.scores(model, x, y, result)
    assert set(scores) == {"deterministic", "mc"}
    assert set(scores["deterministic"]) == set(scores["mc"]) == {"rmse", "nll"}


def test_csv_has_a_header_and_one_row_per_instance(tmp_path):
    result = mc.sample(_classifier(), _inputs(5), samples=10, seed=1)
    with open(mc.save(result, tmp_path / "p.csv"), newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [f"mean_{j}" for j in range(CLASSES)] + [f"std_{j}" for j in range(CLASSES)] + [
        "predicted",
        "entropy",
        "mutual_information",
    ]
    assert len(rows) == 1 + 5
    assert [int(row[2 * CLASSES]) for row in rows[1:]] == result.predicted.tolist()
    np.testing.assert_allclose([[float(v) for v in row[:CLASSES]] for row in rows[1:]], result.mean)


def test_functional_chain_is_supported_and_branching_model_refused():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dropout(0.2)(keras.layers.Dense(8)(inputs))
    chain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    assert mc.sample(chain, _inputs(3), samples=5, seed=0).mean.shape == (3, 2)

    branch = keras.layers.Dense(8)(inputs)
    merged = keras.layers.Add()([keras.layers.Dropout(0.2)(branch), branch])
    branching = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(merged))
    with pytest.raises(PredictError, match="not a chain"):
        mc.sample(branching, _inputs(3), samples=5, seed=0)


def test_model_without_dropout_is_refused():
    model = _classifier(rate=0.3, batch_norm=False)
    no_dropout = keras.Sequential(
        [keras.Input((FEATURES,))]
        + [layer for layer in model.layers if not isinstance(layer, keras.layers.Dropout)]
    )
    with pytest.raises(PredictError, match="no dropout layer"):
        mc.sample(no_dropout, _inputs(), samples=10)


@pytest.mark.parametrize("samples", [0, -3, 2.5, True])
def test_invalid_sample_count_is_refused(samples):
    with pytest.raises(DnnlabError, match="samples must be a positive integer"):
        mc.sample(_classifier(), _inputs(), samples=samples)


def test_unknown_file_suffix_is_refused(tmp_path):
    result = mc.sample(_classifier(), _inputs(), samples=2, seed=0)
    with pytest.raises(PredictError, match=r"\.npz or \.csv"):
        mc.save(result, tmp_path / "p.json")


def test_classification_metrics_on_a_hand_made_example():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]])
    y = np.array([0, 2, 2, 2])
    metrics = calibration.classification_metrics(probabilities, y)
    assert metrics["accuracy"] == pytest.approx(3 / 4)
    assert metrics["nll"] == pytest.approx(
        -(math.log(0.7) + math.log(0.4) + math.log(0.4) + math.log(0.9)) / 4
    )
    brier = [0.09 + 0.04 + 0.01, 0.01 + 0.25 + 0.36, 0.09 + 0.09 + 0.36, 0.0025 + 0.0025 + 0.01]
    assert metrics["brier"] == pytest.approx(sum(brier) / 4)
    # Confidences 0.7, 0.5, 0.4, 0.9 fall in four different 1/15-wide bins; each bin's gap is
    # |accuracy - confidence| of its one instance: |1-0.7|, |0-0.5|, |1-0.4|, |1-0.9|.
    assert metrics["ece"] == pytest.approx((0.3 + 0.5 + 0.6 + 0.1) / 4)


def test_ece_averages_within_a_bin():
    probabilities = np.array([[0.94, 0.06], [0.97, 0.03]])  # both in the bin (14/15, 1]
    metrics = calibration.classification_metrics(probabilities, [0, 1])
    assert metrics["ece"] == pytest.approx(abs(0.5 - 0.955))


def test_regression_metrics_on_a_hand_made_example():
    metrics = mc.regression_metrics([[1.0], [2.0]], [1.5, 2.0], [[0.5], [1.0]])
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.25 / 2))
    nll_first = 0.5 * (math.log(2 * math.pi * 0.25) + 0.25 / 0.25)
    nll_second = 0.5 * math.log(2 * math.pi * 1.0)
    assert metrics["nll"] == pytest.approx((nll_first + nll_second) / 2)


def test_summary_shape_for_classification():
    model = _classifier()
    x = _inputs(8)
    result = mc.sample(model, x, samples=20, seed=2)
    scores = mc.scores(model, x, np.arange(8) % CLASSES, result)
    assert set(scores) == {"deterministic", "mc"}
    for metrics in scores.values():
        assert set(metrics) == {"accuracy", "nll", "brier", "ece"}
        assert all(isinstance(value, float) for value in metrics.values())


@pytest.mark.parametrize("width", [1000, 999])
def test_dropout_masks_keep_the_keras_distribution(width):
    """Mean and spread of Dropout(0.2) on ones: kept units are 1 / 0.8, dropped ones 0."""
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dropout(0.2)])
    result = mc.sample(model, np.ones((2, width), "float32"), samples=200, seed=0, task="regression")
    # 400,000 Bernoulli draws per statistic: the drop fraction is known to about 6e-4.
    drop_fraction = 1 - result.mean.mean() * 0.8
    assert drop_fraction == pytest.approx(0.2, abs=4e-3)
    assert result.std.mean() == pytest.approx(1.25 * math.sqrt(0.2 * 0.8), abs=5e-3)


def test_alpha_dropout_keeps_mean_and_variance():
    """AlphaDropout is built so that zero-mean unit-variance inputs keep those moments."""
    x = np.random.default_rng(1).normal(size=(1, 20_000)).astype("float32")
    model = keras.Sequential([keras.Input((20_000,)), keras.layers.AlphaDropout(0.3)])
    result = mc.sample(model, x, samples=50, seed=0, task="regression")
    second_moment = result.std**2 + result.mean**2  # per unit, over the samples
    assert result.mean.mean() == pytest.approx(x.mean(), abs=0.02)
    assert second_moment.mean() == pytest.approx(np.mean(x**2), rel=0.02)


def test_input_of_the_wrong_shape_is_refused():
    with pytest.raises(PredictError, match=r"expected shape \(instances, 6\)"):
        mc.sample(_classifier(), np.zeros((3, 5), "float32"), samples=2)
