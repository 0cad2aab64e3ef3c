"""Does MC dropout calibrate? `mc-predict --sample`, the temperature-scaled
baseline and reliability diagrams.

Sampling is checked on small Keras models built here, whose dropout rates make the answer exact;
the command end to end on one tiny digits run trained once per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.errors import PredictError
from dnnlab.inference import calibration
from dnnlab.inference import mc_dropout as mc

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
METRICS = {"accuracy", "nll", "brier", "ece"}
runner = CliRunner()


# --- temperature scaling ------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def draw(probabilities: np.ndarray, rng) -> np.ndarray:
    """One class per row, drawn from that row's probabilities."""
    u = rng.random((len(probabilities), 1))
    return np.minimum((np.cumsum(probabilities, axis=1) < u).sum(axis=1), probabilities.shape[1] - 1)


def test_fit_temperature_recovers_a_known_temperature():
    """Labels drawn from softmax(z / 2.5) but reported as softmax(z): the fitted T is 2.5."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(20_000, 5))
    labels = draw(softmax(logits / 2.5), rng)
    assert calibration.fit_temperature(softmax(logits), labels) == pytest.approx(2.5, rel=0.05)
    sharp = draw(softmax(logits / 0.5), rng)
    assert calibration.fit_temperature(softmax(logits), sharp) == pytest.approx(0.5, rel=0.05)


def test_temperature_scaling_keeps_the_predicted_class():
    probabilities = softmax(np.random.default_rng(1).normal(size=(100, 4)))
    np.testing.assert_allclose(calibration.temperature_scale(probabilities, 1.0), probabilities, atol=1e-12)
    for t in (0.3, 3.0):
        scaled = calibration.temperature_scale(probabilities, t)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()


def test_reliability_bins_give_the_ece_of_mc_metrics():
    rng = np.random.default_rng(2)
    probabilities = softmax(rng.normal(scale=2.0, size=(500, 3)))
    labels = rng.integers(0, 3, size=500)
    table = calibration.reliability(probabilities, labels)
    assert table["count"].sum() == 500 and len(table["count"]) == 15
    expected = calibration.classification_metrics(probabilities, labels)["ece"]
    assert calibration.expected_calibration_error(table) == pytest.approx(expected)


# --- which dropout layers sample ----------------------------------------------------------------


def chain(first_rate: float, last_rate: float) -> keras.Model:
    """input dropout (first_rate) -> dense -> dropout (last_rate) -> softmax over 3 classes."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dropout(first_rate),
            keras.layers.Dense(16, activation="elu"),
            keras.layers.Dropout(last_rate),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


X = np.random.default_rng(3).normal(size=(40, 6)).astype("float32")


def test_sample_last_leaves_the_earlier_dropout_deterministic():
    """The input dropout drops 90% and the last one nothing: only `all` shows any spread."""
    model = chain(0.9, 0.0)
    every = mc.sample(model, X, samples=20, seed=0, sample="all")
    last = mc.sample(model, X, samples=20, seed=0, sample="last")
    hidden = mc.sample(model, X, samples=20, seed=0, sample="hidden")
    assert every.std.max() > 0.01
    for result in (last, hidden):
        assert result.std.max() == 0.0
        np.testing.assert_allclose(result.mean, mc.deterministic_outputs(model, X), rtol=1e-6, atol=1e-7)


def test_sample_last_samples_the_last_dropout():
    model = chain(0.0, 0.5)
    last = mc.sample(model, X, samples=20, seed=0, sample="last")
    every = mc.sample(model, X, samples=20, seed=0, sample="all")
    assert last.std.max() > 0.01
    assert not np.array_equal(last.mean, mc.sample(chain(0.9, 0.5), X, samples=20, seed=0).mean)
    assert every.std.max() > 0.01


def test_sample_hidden_needs_a_dropout_after_the_first_dense_layer():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(6,)), keras.layers.Dropout(0.2), keras.layers.Dense(3, activation="softmax")]
    )
    with pytest.raises(PredictError, match="hidden"):
        mc.sample(model, X, samples=5, sample="hidden")
    with pytest.raises(PredictError, match="sample must be one of all, hidden, last"):
        mc.sample(model, X, samples=5, sample="first")


# --- the command end to end ---------------------------------------------------------------------

DIGITS = {
    "name": "mc-calibration",
    "seed": 42,
    "data": {"dataset": "digits", "validation": 0.15, "scaling": "standardize"},
    "model": {"hidden": [16], "dropout": {"type": "dropout", "rate": 0.2, "where": "all"}},
    "training": {"epochs": 2, "optimizer": {"type": "nadam", "learning_rate": 0.01}},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    return train_run(write_spec(folder, DIGITS), folder / "runs")


def test_mc_predict_adds_the_temperature_scaled_baseline_and_plots(run_dir, tmp_path):
    plot = tmp_path / "reliability.png"
    result = runner.invoke(
        app,
        ["mc-predict", str(run_dir), "--samples", "20", "--sample", "last", "--plot", str(plot), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["sample"] == "last"
    assert payload["temperature"] > 0
    for key in ("deterministic", "mc", "temperature_scaled"):
        assert set(payload[key]) == METRICS
    # Temperature scaling never changes the predicted class.
    assert payload["temperature_scaled"]["accuracy"] == payload["deterministic"]["accuracy"]
    assert "temperature-scaled" in result.stderr  # the table's third column
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_draws_the_calibration_of_an_mc_predict_file(run_dir, tmp_path):
    """mc-predict --out keeps the labels and the baselines; report --mc draws their reliability."""
    npz = tmp_path / "mc.npz"
    result = runner.invoke(app, ["mc-predict", str(run_dir), "--samples", "20", "--out", str(npz), "-q"])
    assert result.exit_code == 0, result.stderr
    with np.load(npz) as saved:
        assert {"mean", "labels", "deterministic", "temperature_scaled", "temperature"} <= set(saved.files)
        assert len(saved["labels"]) == len(saved["mean"]) == len(saved["deterministic"])
        ece = calibration.expected_calibration_error(calibration.reliability(saved["mean"], saved["labels"]))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--mc", str(npz)])
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert "<h2>MC dropout calibration</h2>" in page
    assert 'alt="reliability diagram of mc.npz"' in page and "data:image/png;base64," in page
    assert f"{ece:.4f}" in page  # the MC row of its ECE table


def test_report_refuses_an_mc_file_without_labels(run_dir, tmp_path):
    bare = tmp_path / "bare.npz"
    np.savez(bare, mean=np.full((3, 10), 0.1))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--mc", str(bare)])
    assert result.exit_code == 2 and "no labels" in result.stderr and not out.exists()


def test_sample_default_is_all_and_last_differs(run_dir):
    def figures(*args):
        result = runner.invoke(app, ["mc-predict", str(run_dir), "--samples", "20", "--json", *args])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    default, every, last = figures(), figures("--sample", "all"), figures("--sample", "last")
    assert default["sample"] == "all" and default["mc"] == every["mc"]
    assert last["mc"] != every["mc"]
    assert last["deterministic"] == every["deterministic"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plot", "missing/r.png"], "does not exist"),
        (["--plot", "r.txt"], "expected a file name ending in .png"),
        (["--sample", "first"], "first"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(run_dir, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["mc-predict", str(run_dir), "--samples", "5", *args])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_science_experiment_spec_is_valid():
    from dnnlab.data.checked_spec import check_spec

    checked = check_spec(CONFIGS / "science" / "mc_dropout_calibration.yaml")
    assert checked.warnings == []
