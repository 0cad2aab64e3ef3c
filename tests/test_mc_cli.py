"""`dnnlab mc-predict` end to end: trained run directories in, JSON and files out.

The runs are tiny (digits or diabetes, one hidden layer of 16 units, a few epochs) and trained
once per module in process; each test then drives the real command through Typer's CliRunner,
whose stdout and stderr are separate, so "JSON on stdout, the table on stderr" can be checked.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import start, train_run, write_spec
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.inference import calibration
from dnnlab.inference import mc_dropout as mc
from dnnlab.inference import mc_predict as mc_workflow
from dnnlab.model.build import load_model
from dnnlab.training import session

# configs/mc_dropout.yaml, shrunk: 16 units and 3 epochs at a higher rate still reach about 90%
# test accuracy on digits, enough to tell scaled inputs from unscaled ones.
MC_DIGITS = {
    "name": "mc-dropout",
    "seed": 42,
    "data": {"dataset": "digits", "validation": 0.15, "scaling": "standardize"},
    "model": {
        "hidden": [16],
        "activation": "elu",
        "initializer": "he_normal",
        "dropout": {"type": "dropout", "rate": 0.2, "where": "all"},
    },
    "training": {"epochs": 3, "optimizer": {"type": "nadam", "learning_rate": 0.01}},
}
NO_DROPOUT = ["model.dropout=null", "training.epochs=1"]
BATCH_NORM = ["model.normalization=batch_norm", "training.epochs=2"]
MC_REGRESSION = {
    "name": "mc-regression",
    "seed": 42,
    "data": {"dataset": "diabetes", "validation": 0.25, "scaling": "standardize"},
    "model": {"hidden": [16], "dropout": {"type": "dropout", "rate": 0.2, "where": "hidden"}},
    "training": {"epochs": 2, "batch_size": 16, "optimizer": {"type": "nadam", "learning_rate": 0.01}},
}
CLASSIFICATION_METRICS = {"accuracy", "nll", "brier", "ece"}
REGRESSION_METRICS = {"rmse", "nll"}
CLASSIFICATION_ARRAYS = {"mean", "std", "predicted", "entropy", "mutual_information"}
DIGITS_CLASSES = 10

runner = CliRunner()


# --- helpers ------------------------------------------------------------------------------------


def mc_predict(*args):
    return runner.invoke(app, ["mc-predict", *map(str, args)])


def mc_json(*args) -> dict:
    result = mc_predict(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))


def assert_finite_metrics(metrics: dict, names: set[str]) -> None:
    assert set(metrics) == names
    for name, value in metrics.items():
        assert isinstance(value, float) and math.isfinite(value), (name, value)


# --- shared runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mc-cli")


@pytest.fixture(scope="module")
def digits_spec(module_dir) -> Path:
    return write_spec(module_dir / "specs", MC_DIGITS)


@pytest.fixture(scope="module")
def dropout_run(module_dir, digits_spec) -> Path:
    return train_run(digits_spec, module_dir / "runs")


@pytest.fixture(scope="module")
def plain_run(module_dir, digits_spec) -> Path:
    return train_run(digits_spec, module_dir / "runs", NO_DROPOUT, "plain")


@pytest.fixture(scope="module")
def batch_norm_run(module_dir, digits_spec) -> Path:
    return train_run(digits_spec, module_dir / "runs", BATCH_NORM, "batch-norm")


@pytest.fixture(scope="module")
def regression_run(module_dir) -> Path:
    return train_run(write_spec(module_dir / "specs", MC_REGRESSION, "regression.yaml"), module_dir / "runs")


@pytest.fixture(scope="module")
def seeded(dropout_run) -> dict:
    """The JSON of `mc-predict RUN --samples 20 --seed 3 --json`, and its stderr."""
    result = mc_predict(dropout_run, "--samples", 20, "--seed", 3, "--json")
    assert result.exit_code == 0, result.stderr
    return {"json": json.loads(result.stdout), "stderr": result.stderr}


# --- JSON on stdout, the table on stderr --------------------------------------------------------


def test_json_is_the_only_thing_on_stdout(seeded, dropout_run):
    out = seeded["json"]
    assert out["run"] == str(dropout_run)
    assert out["data"] == "test" and out["samples"] == 20 and out["seed"] == 3
    assert out["instances"] == 360  # 20% of digits' 1797 rows
    for column in ("deterministic", "mc"):
        assert_finite_metrics(out[column], CLASSIFICATION_METRICS)
        assert 0.0 <= out[column]["accuracy"] <= 1.0
        assert out[column]["nll"] >= 0 and out[column]["brier"] >= 0 and 0 <= out[column]["ece"] <= 1
    assert out["deterministic"]["accuracy"] > 0.8  # the model learned something


def test_summary_table_on_stderr_has_the_three_columns_side_by_side(seeded):
    stderr = seeded["stderr"]
    lines = stderr.splitlines()
    assert any("deterministic" in line and "MC dropout" in line for line in lines), stderr
    for metric in CLASSIFICATION_METRICS:
        row = next(
            (
                line
                for line in lines
                if line.split("│")[0].strip(" │") == metric or line.strip(" │").startswith(metric + " ")
            ),
            None,
        )
        assert row is not None, (metric, stderr)
        numbers = [cell for cell in row.replace("│", " ").split() if cell.replace(".", "").isdigit()]
        assert len(numbers) == 3, row  # deterministic, MC dropout, temperature-scaled
    assert any(line.endswith(": 360 instances from test, 20 samples, seed 3") for line in lines), stderr


def test_without_seed_the_results_are_reproducible(dropout_run, tmp_path):
    files = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in files:
        result = mc_predict(dropout_run, "--samples", 5, "--out", path, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["seed"] == mc_workflow.DEFAULT_SEED
        assert f"seed {mc_workflow.DEFAULT_SEED}" in result.stderr
    assert files[0].read_bytes() == files[1].read_bytes()


def test_quiet_prints_the_table_and_the_json_only(dropout_run):
    result = mc_predict(dropout_run, "--samples", 2, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["samples"] == 2
    assert "instances from" not in result.stderr and "MC dropout" in result.stderr


def test_the_library_function_returns_what_the_command_prints(dropout_run, tmp_path):
    out = tmp_path / "mc.csv"
    result = mc_workflow.mc_predict(dropout_run, samples=4, data="validation", seed=1, out=out)
    assert (result.run, result.source, result.instances, result.seed) == (dropout_run, "validation", 216, 1)
    assert result.written == out and len(read_csv(out)) == 217
    assert_finite_metrics(result.scores["mc"], CLASSIFICATION_METRICS)
    cli = mc_json(dropout_run, "--samples", 4, "--data", "validation", "--seed", 1)
    assert cli == result.to_json()


# --- per-instance files ---------------------------------------------------------------------------


def test_csv_has_one_row_per_instance(dropout_run, tmp_path):
    path = tmp_path / "mc.csv"
    out = mc_json(dropout_run, "--samples", 20, "--seed", 3, "--out", path)
    rows = read_csv(path)
    assert len(rows) == out["instances"] + 1
    header = rows[0]
    assert len(set(map(len, rows))) == 1, "every row as wide as the header"
    assert {"predicted", "entropy", "mutual_information"} <= set(header), header


def test_npz_holds_the_per_instance_arrays(dropout_run, tmp_path):
    path = tmp_path / "mc.npz"
    result = mc_predict(dropout_run, "--samples", 20, "--seed", 3, "--out", path, "--json")
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # "wrote FILE" went to stderr, not into the JSON
    assert f"wrote {path}" in "".join(result.stderr.splitlines())
    n = json.loads(result.stdout)["instances"]
    with np.load(path) as arrays:
        # with labels, also what `report --mc` draws reliability diagrams from
        baselines = {"labels", "deterministic", "temperature_scaled", "temperature"}
        assert set(arrays.files) == CLASSIFICATION_ARRAYS | baselines
        mean, std = arrays["mean"], arrays["std"]
        assert mean.shape == std.shape == (n, DIGITS_CLASSES)
        for name in ("predicted", "entropy", "mutual_information"):
            assert arrays[name].shape == (n,)
        np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(arrays["predicted"], mean.argmax(axis=1))
        assert (std >= 0).all() and (std > 0).any()
        assert (arrays["mutual_information"] >= -1e-6).all()


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_same_seed_same_file_other_seed_other_file(dropout_run, tmp_path, suffix):
    files = {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        files[label] = tmp_path / f"{label}{suffix}"
        result = mc_predict(dropout_run, "--samples", 20, "--seed", seed, "--out", files[label])
        assert result.exit_code == 0, result.stderr
    assert files["a"].read_bytes() == files["b"].read_bytes()
    assert files["a"].read_bytes() != files["c"].read_bytes()


# --- which run, which data ------------------------------------------------------------------------


def test_without_run_dir_the_latest_completed_run_is_used(tmp_path, monkeypatch, digits_spec):
    runs_dir = tmp_path / "runs"
    # The names sort opposite to the training order, so picking by name would pick wrongly.
    older = train_run(digits_spec, runs_dir, ["training.epochs=1"], "zz-older")
    time.sleep(1.1)  # run.json's `finished` has one-second resolution
    newer = train_run(digits_spec, runs_dir, ["training.epochs=1"], "aa-newer")
    time.sleep(1.1)
    record = session.Session.record_epoch

    def record_then_interrupt(self, epoch, *args, **kwargs):
        record(self, epoch, *args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(session.Session, "record_epoch", record_then_interrupt)
        interrupted = start(digits_spec, runs_dir, ["training.epochs=2"], "interrupted")
    assert interrupted.status == "interrupted"
    assert (
        json.loads((older / "run.json").read_text())["finished"]
        < json.loads((newer / "run.json").read_text())["finished"]
    )

    monkeypatch.chdir(tmp_path)
    out = mc_json("--samples", 2, "--seed", 0)
    assert Path(out["run"]).resolve() == newer.resolve()


def test_without_run_dir_and_no_runs_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mc_predict("--samples", 2)
    assert result.exit_code == 2
    assert len(error_lines(result.stderr)) == 1 and "no completed run" in result.stderr


def test_validation_split(dropout_run):
    out = mc_json(dropout_run, "--samples", 5, "--seed", 1, "--data", "validation")
    assert out["data"] == "validation"
    assert out["instances"] == 216  # 15% of the 1437 rows left after the 20% test split
    assert_finite_metrics(out["mc"], CLASSIFICATION_METRICS)


def test_a_file_of_raw_rows_is_scaled_as_in_training(dropout_run, tmp_path):
    digits = load_digits()
    x, y = digits.data[:50].astype("float32"), digits.target[:50]
    path = tmp_path / "raw.npz"
    np.savez(path, x=x, y=y)
    out = mc_json(dropout_run, "--samples", 10, "--seed", 1, "--data", path)
    assert out["instances"] == 50 and out["data"] == str(path)
    assert out["deterministic"]["accuracy"] > 0.8
    assert out["mc"]["accuracy"] > 0.8
    # The contrast: the same model fed the raw pixels (0..16) without the run's scaling. How much
    # worse depends on the trained model (its dropout masks): 0.10 with dnnlab's seeded dropout.
    model = load_model(dropout_run / "model.keras", compile=False)
    raw_accuracy = calibration.classification_metrics(mc.deterministic_outputs(model, x), y)["accuracy"]
    assert raw_accuracy < out["deterministic"]["accuracy"] - 0.05


def test_a_csv_file_without_labels_predicts_without_metrics(dropout_run, tmp_path):
    path = tmp_path / "raw.csv"
    np.savetxt(path, load_digits().data[:7], delimiter=",", fmt="%g")
    out_file = tmp_path / "pred.csv"
    result = mc_predict(dropout_run, "--samples", 5, "--seed", 1, "--data", path, "--out", out_file, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["instances"] == 7 and out["deterministic"] is None and out["mc"] is None
    assert "no labels" in result.stderr
    assert len(read_csv(out_file)) == 8


# --- refusals: exit 2, one line -------------------------------------------------------------------


def test_a_model_without_dropout_is_refused(plain_run):
    result = mc_predict(plain_run, "--samples", 5)
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "dropout" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_samples_must_be_positive(dropout_run, samples):
    result = mc_predict(dropout_run, "--samples", samples)
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: ") and "--samples" in line


def test_a_missing_run_dir_exits_2(tmp_path):
    result = mc_predict(tmp_path / "no-such-run", "--samples", 5)
    assert result.exit_code == 2
    assert len(error_lines(result.stderr)) == 1, result.stderr


def test_a_missing_data_file_exits_2(dropout_run, tmp_path):
    result = mc_predict(dropout_run, "--samples", 5, "--data", tmp_path / "nonexistent.npz")
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "nonexistent.npz" in lines[0], result.stderr


def test_an_unknown_out_suffix_exits_2(dropout_run, tmp_path):
    result = mc_predict(dropout_run, "--samples", 2, "--out", tmp_path / "mc.txt")
    assert result.exit_code == 2
    assert len(error_lines(result.stderr)) == 1 and ".npz or .csv" in result.stderr


# --- batch norm: nothing changes -------------------------------------------------------------------


def test_mc_predict_leaves_the_model_file_unchanged(batch_norm_run, tmp_path):
    model_file = batch_norm_run / "model.keras"
    before = sha256(model_file)
    out = mc_json(batch_norm_run, "--samples", 10, "--seed", 2, "--out", tmp_path / "bn.npz")
    assert_finite_metrics(out["mc"], CLASSIFICATION_METRICS)
    assert sha256(model_file) == before


def test_mc_predict_leaves_batch_norm_statistics_unchanged(batch_norm_run):
    import keras

    model = load_model(batch_norm_run / "model.keras", compile=False)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms, "the spec should have built batch norm layers"
    before = [(np.array(n.moving_mean), np.array(n.moving_variance)) for n in norms]
    weights = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).normal(size=(64, 64)).astype("float32") * 3 + 1  # far from training stats
    mc.sample(model, x, samples=30, seed=5)
    for norm, (mean, variance) in zip(norms, before):
        assert np.array_equal(np.array(norm.moving_mean), mean)
        assert np.array_equal(np.array(norm.moving_variance), variance)
    for old, new in zip(weights, model.get_weights()):
        assert np.array_equal(old, new)


# --- regression -----------------------------------------------------------------------------------


def test_regression_reports_rmse_and_nll(regression_run, tmp_path):
    path = tmp_path / "reg.npz"
    out = mc_json(regression_run, "--samples", 20, "--seed", 3, "--out", path)
    assert out["instances"] == 89  # 20% of diabetes' 442 rows
    for column in ("deterministic", "mc"):
        assert_finite_metrics(out[column], REGRESSION_METRICS)
        assert out[column]["rmse"] > 0
    with np.load(path) as arrays:
        assert set(arrays.files) == {"mean", "std"}
        assert arrays["mean"].shape == arrays["std"].shape
        assert len(arrays["mean"]) == out["instances"]
        assert (arrays["std"] > 0).any()


def test_regression_csv(regression_run, tmp_path):
    path = tmp_path / "reg.csv"
    out = mc_json(regression_run, "--samples", 5, "--seed", 3, "--out", path)
    rows = read_csv(path)
    assert len(rows) == out["instances"] + 1
    assert not {"predicted", "entropy", "mutual_information"} & set(rows[0])
