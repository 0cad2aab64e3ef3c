"""run.json's test record, `dnnlab evaluate`, `dnnlab predict`, and compare's test columns, on one
small digits run trained in this process."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import SPECIES, read_json, species_csv, tiny_spec, train_run, write_spec
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.files.array_csv import arrays_csv_text

SPEC = tiny_spec(
    name="digits-eval",
    data={"validation": 0.15, "scaling": "standardize"},
    model={"hidden": [24], "activation": "relu"},
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    return train_run(write_spec(root, SPEC), root / "runs")


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory) -> Path:
    """Raw (unscaled) digits rows with labels, as a user would have them."""
    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=digits.data[:90], y=digits.target[:90])
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_test_record_equals_evaluate_on_the_test_split(run):
    test = read_json(run / "run.json")["test"]
    assert set(test) == {"loss", "accuracy"}
    result = invoke("evaluate", run, "--data", "test", "--json")
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)
    assert evaluation["checkpoint"] == "final" and evaluation["instances"] > 0
    assert (evaluation["loss"], evaluation["accuracy"]) == (test["loss"], test["accuracy"])


def test_evaluate_other_data_and_checkpoints(run, raw_file):
    validation = invoke("evaluate", run, "--data", "validation", "--checkpoint", "best", "--json")
    assert validation.exit_code == 0, validation.output
    assert json.loads(validation.stdout)["data"] == "validation"
    on_file = invoke("evaluate", run, "--data", raw_file, "--json")
    assert on_file.exit_code == 0, on_file.output
    assert json.loads(on_file.stdout)["instances"] == 90
    human = invoke("evaluate", run)
    assert human.exit_code == 0 and human.stdout == ""
    assert "accuracy" in human.stderr


def _run_model_outputs(run: Path, raw: np.ndarray) -> np.ndarray:
    from dnnlab.data.datasets import Scaling
    from dnnlab.model.build import load_model

    scaling = Scaling.from_dict(read_json(run / "preprocessing.json")["scaling"])
    model = load_model(run / "model.keras", compile=False)
    return np.asarray(model(scaling.apply(raw), training=False))


def test_predict_writes_one_row_per_input_row_with_the_models_classes(run, raw_file, tmp_path):
    raw = np.load(raw_file)["x"]
    expected = _run_model_outputs(run, raw)
    out = tmp_path / "predictions.npz"
    result = invoke("predict", run, "--data", raw_file, "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["predicted", "probabilities"]
        assert arrays["predicted"].tolist() == expected.argmax(axis=1).tolist()
        np.testing.assert_allclose(arrays["probabilities"], expected, atol=1e-6)
    csv_out = tmp_path / "predictions.csv"
    assert invoke("predict", run, "--data", raw_file, "--out", csv_out).exit_code == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("predicted,probabilities_0,") and len(lines) == 1 + len(raw)
    as_json = json.loads(invoke("predict", run, "--data", raw_file, "--json").stdout)
    assert as_json["instances"] == len(raw) and len(as_json["predicted"]) == len(raw)


def test_predict_gives_the_class_labels_of_a_text_target_and_their_indices(tmp_path):
    source = {"type": "csv", "path": str(species_csv(tmp_path / "train.csv")), "target": "species"}
    spec = {"name": "species", "data": {"dataset": source}, "model": {"hidden": [8]}}
    run = train_run(write_spec(tmp_path, {**spec, "training": {"epochs": 3}}), tmp_path / "runs")
    assert read_json(run / "preprocessing.json")["class_labels"] == list(SPECIES)
    new = species_csv(tmp_path / "new.csv", rows=30, label_column=None)
    out = tmp_path / "predictions.npz"
    assert invoke("predict", run, "--data", new, "--out", out).exit_code == 0
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["predicted", "predicted_index", "probabilities"]
        index = arrays["probabilities"].argmax(axis=1)
        assert arrays["predicted_index"].tolist() == index.tolist()
        assert arrays["predicted"].tolist() == [SPECIES[i] for i in index]
        # the clusters are far apart: the model has learnt them, so every label occurs
        assert set(arrays["predicted"].tolist()) == set(SPECIES)
    lines = invoke("predict", run, "--data", new).stdout.splitlines()
    assert lines[0].startswith("predicted,predicted_index,probabilities_0,")
    assert lines[1].split(",")[0] in SPECIES


def test_bad_input_is_one_line_exit_2_and_no_file(run, tmp_path):
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, x=np.zeros((4, 10)))
    out = tmp_path / "out.csv"
    for args in (
        ("predict", run, "--data", narrow, "--out", out),
        ("evaluate", run, "--data", narrow),
        ("predict", run, "--data", narrow, "--out", tmp_path / "out.txt"),
        ("evaluate", run, "--checkpoint", "middle"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()
    modelless = tmp_path / "modelless"
    shutil.copytree(run, modelless, ignore=shutil.ignore_patterns("*.keras"))
    result = invoke("evaluate", modelless)
    assert result.exit_code == 2 and "no model.keras" in result.stderr


def test_compare_shows_test_columns_and_ranks_by_test_only_when_asked(run):
    default = invoke("compare", run, "--format", "json")
    assert default.exit_code == 0, default.output
    row = json.loads(default.stdout)["runs"][0]
    assert row["best"]["metric"] == "val_loss" and set(row["test"]) == {"loss", "accuracy"}
    by_test = invoke("compare", run, "--metric", "test_accuracy", "--format", "csv")
    assert by_test.exit_code == 0, by_test.output
    assert "test_accuracy" in by_test.stdout.splitlines()[0]
    assert "ranking by test_accuracy on the test split" in by_test.stderr


def test_the_end_line_prints_the_test_scores(capsys):
    from dnnlab.cli.run_commands import render_run
    from dnnlab.rundir.records import BestRecord
    from dnnlab.training.lifecycle import TrainResult

    best = BestRecord("val_loss", "min", 0.25, 1)
    render_run(TrainResult(Path("runs/x"), "completed", 2, best, test={"loss": 0.3, "accuracy": 0.91}))
    assert "test accuracy 0.91 loss 0.3" in capsys.readouterr().err


def test_prediction_csv_quotes_labels_numbers_columns_and_round_trips_float32():
    """The one writer of predict's and mc-predict's CSV: NAME for a one-value column, NAME_j for
    a wider one or one named in `numbered`, labels quoted, floats that read back exactly."""
    probabilities = np.array([[0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    arrays = {
        "predicted": np.array(["a", "b,c"]),
        "predicted_index": np.array([0, 1]),
        "probabilities": probabilities,
        "mean": np.array([[1.5], [2.5]], dtype=np.float32),
    }
    rows = list(csv.reader(io.StringIO(arrays_csv_text(arrays, numbered=("mean",)))))
    assert rows[0] == ["predicted", "predicted_index", "probabilities_0", "probabilities_1", "mean_0"]
    assert rows[1] == ["a", "0", "0.100000001", "0.899999976", "1.5"]
    assert rows[2][:2] == ["b,c", "1"]
    assert np.array([row[2:4] for row in rows[1:]], dtype=np.float32).tolist() == probabilities.tolist()
