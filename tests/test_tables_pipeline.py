"""Tables through every command: a CSV with text categories and missing cells trains without a
preprocessing script, `check` shows and config.yaml records each column's type, predict,
evaluate and mc-predict read a raw CSV with the same columns, the SavedModel export takes the raw
rows (TFLite and ONNX the encoded vector) and computes what predict does, and a bad table is one
line naming the file, the row and the column, with nothing written."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import read_json, train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.data import holdout, table_files
from dnnlab.data.checked_spec import check_spec
from dnnlab.data.datasets import describe, load
from dnnlab.data.tables import TablePreprocessing
from dnnlab.spec.data import DataSpec
from dnnlab.spec.loading import read_run_spec

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnxruntime"))
COLORS = ("red", "green", "blue")
HEADER = ["size", "home town", "member", "label"]


def table_rows(n: int = 90, seed: int = 0) -> list[list[str]]:
    """size (a number; every 9th missing), home town (text; every 11th empty), member (yes/no;
    every 13th NA), and a label a, b or c that follows the size and the town."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        town = COLORS[i % 3]
        size = rng.normal(3.0 * (i % 3), 1.0)
        rows.append(
            [
                "" if i % 9 == 4 else f"{size:.3f}",
                "" if i % 11 == 5 else town,
                "NA" if i % 13 == 6 else ("yes" if i % 2 else "no"),
                "abc"[i % 3],
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def spec_for(dataset: dict | str, **data) -> dict:
    return {
        "name": "table",
        "seed": 3,
        "data": {"dataset": dataset, "validation": 0.15, **data},
        "model": {"hidden": [8], "dropout": {"type": "dropout", "rate": 0.2, "where": "hidden"}},
        "training": {"epochs": 2, "batch_size": 16},
    }


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, (
        result.stderr
    )
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# --- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("table")
    source = {"type": "csv", "path": str(write_csv(root / "train.csv", table_rows())), "target": "label"}
    return train_run(write_spec(root, spec_for(source)), root / "runs")


def test_a_csv_of_text_and_missing_cells_trains_and_records_its_encoding(run):
    preprocessing = read_json(run / "preprocessing.json")
    table = preprocessing["table"]
    assert table["features"] == [
        "size",
        "home town=blue",
        "home town=green",
        "home town=red",
        "member=yes",
    ]
    assert preprocessing["input_shape"] == [5] and preprocessing["class_labels"] == ["a", "b", "c"]
    # the numeric column is standardized with the training rows' statistics; one-hot and 0/1
    # columns keep offset 0 and scale 1
    scaling = preprocessing["scaling"]
    assert scaling["offset"][1:] == [0.0] * 4 and scaling["scale"][1:] == [1.0] * 4
    assert 2.0 < scaling["offset"][0] < 4.0 and scaling["scale"][0] > 1.0
    size = table["columns"][0]
    assert (size["missing"], round(size["fill"], 4)) == ("mean", round(scaling["offset"][0], 4))
    config = yaml.safe_load((run / "config.yaml").read_text())["data"]["dataset"]
    assert {name: rule["type"] for name, rule in config["columns"].items()} == {
        "size": "numeric",
        "home town": "categorical",
        "member": "binary",
    }


def test_the_recorded_spec_reloads_the_same_encoding(run):
    """config.yaml lists every column's type, so a resume or a reloaded split encodes alike."""
    spec, _ = read_run_spec(run / "config.yaml")
    recorded = read_json(run / "preprocessing.json")
    reloaded = load(spec.data).preprocessing()
    assert reloaded["table"] == recorded["table"]
    np.testing.assert_allclose(reloaded["scaling"]["offset"], recorded["scaling"]["offset"], rtol=1e-6)


def test_a_numeric_csv_keeps_its_array_path(tmp_path):
    rows = [[f"{i * 0.5}", f"{i % 4}", f"{i % 2}"] for i in range(40)]
    path = write_csv(tmp_path / "numbers.csv", rows, ["a", "b", "y"])
    data = DataSpec(dataset={"type": "csv", "path": str(path), "target": "y"}, scaling="none")
    assert describe(data).table is None
    dataset = load(data)
    assert "table" not in dataset.preprocessing() and dataset.x_train.shape[1] == 2
    # b has four values 0..3 and stays one numeric column, not a one-hot
    assert set(np.unique(dataset.x_train[:, 1])) == {0.0, 1.0, 2.0, 3.0}


def test_a_parquet_file_is_a_table(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    csv_path = write_csv(tmp_path / "t.csv", table_rows())
    pd.read_csv(csv_path, keep_default_na=False, na_values=["", "NA"]).to_parquet(tmp_path / "t.parquet")
    from_csv = describe(DataSpec(dataset={"type": "csv", "path": str(csv_path), "target": "label"}))
    parquet = describe(
        DataSpec(dataset={"type": "csv", "path": str(tmp_path / "t.parquet"), "target": "label"})
    )
    assert parquet.table.to_json() == from_csv.table.to_json() and parquet.input_shape == (5,)


def test_check_shows_the_columns_and_print_config_resolves_them(tmp_path):
    source = {"type": "csv", "path": str(write_csv(tmp_path / "t.csv", table_rows())), "target": "label"}
    spec = write_spec(tmp_path, spec_for(source))
    result = invoke("check", spec, "--print-config")
    assert result.exit_code == 0, result.output
    columns = yaml.safe_load(result.stdout)["data"]["dataset"]["columns"]
    assert columns["home town"] == {"type": "categorical", "missing": "constant", "indicator": False}
    assert columns["member"] == {"type": "binary", "missing": "most_frequent", "indicator": False}
    assert "3 one-hot: blue, green, red" in result.stderr and "5 encoded features" in result.stderr
    report = json.loads(invoke("check", spec, "--json").stdout)
    assert [c["encoded"] for c in report["columns"]][1] == [
        "home town=blue",
        "home town=green",
        "home town=red",
    ]


def test_penguins_is_a_named_table_and_its_mapping_picks_another_target():
    info = describe(DataSpec(dataset="penguins"))
    assert (info.input_shape, info.task, info.num_classes) == ((9,), "classification", 3)
    regression = {
        "type": "penguins",
        "target": "body_mass_g",
        "columns": {"flipper_length_mm": {"missing": "drop"}},  # the 2 rows without the target
    }
    info = describe(DataSpec(dataset=regression, task="regression"))
    # species and island one-hot (3 + 3), three measurements, sex as 0/1, year
    assert (info.input_shape, info.task, info.num_classes) == ((11,), "regression", None)
    with pytest.raises(
        Exception, match=r"penguins.csv row \d+, column 6 \('body_mass_g'\): the target is missing"
    ):
        describe(DataSpec(dataset={"type": "penguins", "target": "body_mass_g"}, task="regression"))


# --- predict, evaluate, mc-predict on a raw CSV ----------------------------------------------


NEW_ROWS = [
    ["1.5", "red", "yes", "a"],
    ["", "green", "no", "b"],  # missing size: the training mean
    ["7.0", "purple", "NA", "c"],  # a town never seen: an all-zero one-hot row; missing member
    ["7.0", "", "NA", "c"],  # the same row with the town missing: also all zero (constant)
    ["2.5", " blue ", "no", "a"],  # spaces around a category are not part of it
]


def predictions(run: Path, path: Path) -> dict:
    result = invoke("predict", run, "--data", path, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_predict_reads_a_raw_csv_by_column_name(run, tmp_path):
    labelled = write_csv(tmp_path / "new.csv", NEW_ROWS)
    out = predictions(run, labelled)
    assert out["instances"] == 5 and set(out["predicted"]) <= {"a", "b", "c"}
    probabilities = np.array(out["probabilities"])
    np.testing.assert_allclose(probabilities[2], probabilities[3], atol=1e-7)  # unseen == missing
    # without the target, with the columns shuffled and an extra column: the same predictions
    shuffled = [[row[2], "ignored", row[0], row[1]] for row in NEW_ROWS]
    other = write_csv(tmp_path / "other.csv", shuffled, ["member", "notes", "size", "home town"])
    np.testing.assert_allclose(np.array(predictions(run, other)["probabilities"]), probabilities, atol=1e-7)


def test_evaluate_and_mc_predict_read_the_raw_labels(run, tmp_path):
    labelled = write_csv(tmp_path / "new.csv", NEW_ROWS)
    evaluated = invoke("evaluate", run, "--data", labelled, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.stdout)
    assert scores["instances"] == 5 and 0.0 <= scores["accuracy"] <= 1.0
    mc = invoke("mc-predict", run, "--data", labelled, "--samples", 4, "--json")
    assert mc.exit_code == 0, mc.output
    assert json.loads(mc.stdout)["instances"] == 5 and json.loads(mc.stdout)["mc"] is not None
    unlabelled = write_csv(tmp_path / "x.csv", [row[:3] for row in NEW_ROWS], HEADER[:3])
    one_line_error(invoke("evaluate", run, "--data", unlabelled), "no labels (column 'label')")


def test_a_raw_csv_missing_a_column_or_holding_bad_cells_is_refused_in_one_line(run, tmp_path):
    no_town = write_csv(tmp_path / "no_town.csv", [[r[0], r[2]] for r in NEW_ROWS], ["size", "member"])
    one_line_error(invoke("predict", run, "--data", no_town), "no_town.csv", "no column 'home town'")
    third = write_csv(tmp_path / "third.csv", [*NEW_ROWS[:2], ["1", "red", "maybe", "a"]])
    one_line_error(invoke("predict", run, "--data", third), "third.csv row 4, column 3", "binary")
    text = write_csv(tmp_path / "text.csv", [["big", "red", "yes", "a"]])
    one_line_error(invoke("predict", run, "--data", text), "text.csv row 2, column 1: not a number")


# --- export ------------------------------------------------------------------------------------


def export(run: Path, out: Path, fmt: str) -> dict:
    result = invoke("export", run, "--out", out, "--format", fmt, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_savedmodel_takes_raw_rows_and_computes_what_predict_does(run, tmp_path):
    import tensorflow as tf

    report = export(run, tmp_path / "saved", "savedmodel")
    assert report["inputs"].startswith("raw rows: one text input per column (3)")
    assert "home_town ('home town')" in report["inputs"]  # a name TensorFlow accepts
    assert "probe rows" in report["source"] and report["max_abs_diff"] <= 1e-5
    raw = write_csv(tmp_path / "raw.csv", NEW_ROWS)
    expected = predictions(run, raw)
    with open(raw, newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    feed = {
        name: tf.constant([row[column] for row in cells])
        for column, name in [("size", "size"), ("home town", "home_town"), ("member", "member")]
    }
    served = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"](**feed)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected["probabilities"], atol=1e-5)
    assert [v.decode() for v in served["predicted"].numpy()] == expected["predicted"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="binary column had in training"):
        served_with = dict(feed, member=tf.constant(["maybe"] * len(cells)))
        tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"](**served_with)


@pytest.mark.parametrize(
    "fmt", ["tflite", pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="no onnx"))]
)
def test_tflite_and_onnx_take_the_encoded_vector(run, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    report = export(run, out, fmt)
    assert report["inputs"].startswith("x: the table's encoded vector of 5 features (unscaled)")
    raw = write_csv(tmp_path / "raw.csv", NEW_ROWS)
    expected = predictions(run, raw)
    encoding = TablePreprocessing.from_json(read_json(run / "preprocessing.json")["table"])
    x = encoding.transform(table_files.read_table(raw, "--data", encoding.text_columns()))
    if fmt == "tflite":
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(out))
        runner = interpreter.get_signature_runner("serving_default")
        (index,) = [d["index"] for d in runner.get_input_details().values()]
        outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        del runner
        interpreter.resize_tensor_input(index, list(x.shape), strict=False)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        probabilities = interpreter.get_tensor(outputs["probabilities"])
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        result = dict(zip(names, session.run(names, {session.get_inputs()[0].name: x}), strict=True))
        probabilities = result["probabilities"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-5)


# --- bad tables: one line, exit 2, nothing written ---------------------------------------------


def seed_holding_out(row: int, n: int, fraction: float = 0.2) -> int:
    """A split_seed whose (unstratified) hold-out puts `row` in the test rows."""
    return next(s for s in range(1000) if row in holdout.split_indices(np.zeros(n), fraction, s, False)[1])


def bad_tables(tmp_path: Path) -> dict[str, tuple[dict, dict, list[str]]]:
    rows = table_rows(40)
    one_class = [row[:3] + ["a"] for row in rows]
    empty = [row[:3] + ["", row[3]] for row in rows]
    unseen = [row if i != 17 else row[:3] + ["z"] for i, row in enumerate(rows)]
    numbers = [row if i != 8 else ["big", *row[1:]] for i, row in enumerate(rows)]

    def source(name: str, table: list[list[str]], header=HEADER, **keys) -> dict:
        return {
            "type": "csv",
            "path": str(write_csv(tmp_path / name, table, header)),
            "target": "label",
            **keys,
        }

    return {
        "one class": (source("one.csv", one_class), {}, ["one.csv", "'label' has one class"]),
        "all missing": (
            source("empty.csv", empty, [*HEADER[:3], "notes", "label"]),
            {},
            ["empty.csv, column 4 has no values, every row misses it"],
        ),
        "unseen label": (
            source("unseen.csv", unseen),
            {"split_seed": seed_holding_out(17, 40)},
            ["unseen.csv row 19, column 4 ('label'): a class the training rows do not have"],
        ),
        "declared numeric": (
            source("numbers.csv", numbers, columns={"size": {"type": "numeric"}}),
            {},
            ["numbers.csv row 10, column 1: not a number"],
        ),
        "features and drop": (
            source("keys.csv", rows, features=["size"], drop=["member"]),
            {},
            ["data.dataset: set only one of features, drop"],
        ),
        "no such column": (
            source("cols.csv", rows, columns={"colour": {"type": "categorical"}}),
            {},
            ["data.dataset.columns.'colour'", "has no such column"],
        ),
        "classes": (
            source("classes.csv", rows),
            {"classes": [0, 1]},
            ["data.classes: not available for a table"],
        ),
        "numbers with a gap": (  # no text column: the array path, which says how to fill the gap
            source(
                "gap.csv",
                [[f"{i}", "NA" if i == 3 else f"{i % 5}", "ab"[i % 2]] for i in range(20)],
                ["a", "b", "label"],
            ),
            {},
            ["gap.csv line 5, column 2 is not a number", "declare the column under data.dataset.columns"],
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "one class",
        "all missing",
        "unseen label",
        "declared numeric",
        "features and drop",
        "no such column",
        "classes",
        "numbers with a gap",
    ],
)
def test_a_bad_table_is_one_line_from_check_and_train_and_nothing_is_written(tmp_path, case):
    source, data, fragments = bad_tables(tmp_path)[case]
    spec = write_spec(tmp_path, spec_for(source, **data))
    if case != "numbers with a gap":  # check reads a file of numbers' header and labels, not its cells
        one_line_error(invoke("check", spec), *fragments)
    runs = tmp_path / "runs"
    one_line_error(invoke("train", spec, "--runs-dir", runs), *fragments)
    assert not runs.exists() or not any(runs.iterdir())


def test_a_table_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(table_files, "MAX_TABLE_BYTES", 200)
    source = {"type": "csv", "path": str(write_csv(tmp_path / "big.csv", table_rows())), "target": "label"}
    spec = write_spec(tmp_path, spec_for({**source, "drop": ["member"]}))
    runs = tmp_path / "runs"
    one_line_error(
        invoke("train", spec, "--runs-dir", runs), "data.dataset.path", "big.csv has", "the 200 allowed"
    )
    assert not runs.exists() or not any(runs.iterdir())


def test_summary_counts_the_encoded_width(tmp_path):
    source = {"type": "csv", "path": str(write_csv(tmp_path / "t.csv", table_rows())), "target": "label"}
    checked = check_spec(write_spec(tmp_path, spec_for(source)))
    assert checked.info.input_shape == (5,)
    result = invoke("summary", tmp_path / "spec.yaml", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == (5 * 8 + 8) + (8 * 3 + 3)


def test_column_names_become_mlflow_param_names_it_accepts():
    """config.yaml lists a table's columns by name; MLflow refuses `(` in a param's name."""
    validation = pytest.importorskip("mlflow.utils.validation")
    from dnnlab.training.mlflow_tracking import spec_params

    columns = {"size (cm)": {"type": "numeric"}, "size [cm]": {"type": "binary"}}
    params = spec_params({"data": {"dataset": {"columns": columns}}})
    assert params == {
        "data.dataset.columns.size _cm_.type": "numeric",
        "data.dataset.columns.size _cm_.type_2": "binary",
    }
    for name in params:
        validation._validate_param_name(name)
