"""`dnnlab export`: batch-norm folding on models with random statistics (no training), and each
format end to end on one small digits run, loaded by its own runtime on raw inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import read_json, species_csv, train_run, write_spec
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from dnnlab import runtime
from dnnlab.cli.main import app

runtime.quiet_tensorflow()
import keras  # noqa: E402

from dnnlab.data.checked_spec import check_spec_mapping  # noqa: E402
from dnnlab.data.datasets import Scaling  # noqa: E402
from dnnlab.inference.folding import FoldError, inference_copy, prune  # noqa: E402
from dnnlab.model.build import build_model, load_model  # noqa: E402

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnxruntime"))


def _model(model: dict) -> keras.Model:
    checked = check_spec_mapping({"name": "fold", "data": {"dataset": "digits"}, "model": model}, [], "test")
    built = build_model(checked.spec, (8, 8))
    rng = np.random.default_rng(0)
    for layer in built.layers:  # statistics and affine parameters far from the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, n))
            layer.beta.assign(rng.normal(0, 0.5, n))
            layer.moving_mean.assign(rng.normal(0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n))
    return built


@pytest.mark.parametrize(
    "model",
    [
        {
            "hidden": [32, 16],
            "activation": "elu",
            "normalization": {"type": "batch_norm", "position": "before"},
        },
        {
            "hidden": [32, 16],
            "activation": "relu",
            "normalization": {"type": "batch_norm", "position": "after"},
        },
        {
            "hidden": [32],
            "activation": "prelu",
            "input_normalization": "batch_norm",
            "normalization": {"type": "batch_norm", "position": "after"},
            "dropout": {"type": "dropout", "rate": 0.3, "where": "all"},
        },
    ],
    ids=["before", "after", "input-prelu-dropout"],
)
def test_folding_removes_every_batch_norm_and_keeps_the_outputs(model):
    original = _model(model)
    folded, names = inference_copy(original, fold_batch_norm=True)
    assert names and not any(isinstance(x, keras.layers.BatchNormalization) for x in folded.layers)
    assert not any(isinstance(x, keras.layers.Dropout) for x in folded.layers)
    x = np.random.default_rng(1).normal(size=(64, 8, 8)).astype("float32")
    np.testing.assert_allclose(folded(x), original(x, training=False), atol=1e-5)


def test_a_batch_norm_between_two_nonlinearities_is_refused():
    spec = {
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "batch_norm"},
            {"type": "activation", "activation": "tanh"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ]
    }
    with pytest.raises(FoldError, match="cannot fold batch_norm.*Export without --fold-batch-norm"):
        inference_copy(_model(spec), fold_batch_norm=True)


def test_prune_zeroes_small_weights_and_counts_them():
    copy, _ = inference_copy(_model({"hidden": [16]}))
    zeros, total = prune(copy, 0.05)
    kernels = [np.asarray(x.kernel) for x in copy.layers if isinstance(x, keras.layers.Dense)]
    assert total == sum(k.size for k in kernels) and zeros == sum(int((k == 0).sum()) for k in kernels)
    assert 0 < zeros < total and all(np.all((k == 0) | (np.abs(k) >= 0.05)) for k in kernels)


# --- end to end on a trained run ------------------------------------------------------------

SPEC = {
    "name": "digits-export",
    "seed": 5,
    # standardize (the default): digits' near-constant pixels get tiny standard deviations, the
    # case where int8 once kept the class of only 95% of the test rows
    "data": {"dataset": "digits", "validation": 0.15},
    "model": {
        "hidden": [48, 24],
        "activation": "elu",
        "input_normalization": "batch_norm",
        "normalization": {"type": "batch_norm", "position": "before"},
    },
    "training": {"epochs": 8, "batch_size": 32, "optimizer": {"type": "nadam", "learning_rate": 0.003}},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    return train_run(write_spec(root, SPEC), root / "runs")


@pytest.fixture(scope="module")
def raw_and_expected(run) -> tuple[np.ndarray, np.ndarray]:
    """Raw digits rows and the run's model outputs on them, scaled as in training."""
    raw = load_digits().data.astype("float32")
    scaling = Scaling.from_dict(read_json(run / "preprocessing.json")["scaling"])
    model = load_model(run / "model.keras", compile=False)
    return raw, np.asarray(model(scaling.apply(raw), training=False))


def export(run: Path, out: Path, *options: str) -> dict:
    invoked = CliRunner().invoke(app, ["export", str(run), "--out", str(out), "--json", *options])
    assert invoked.exit_code == 0, invoked.output
    result = json.loads(invoked.stdout)
    assert result["path"] == str(out) and out.exists()
    return result


def savedmodel_outputs(path: Path, raw: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(x=tf.constant(raw)).items()}


def tflite_outputs(path: Path, raw: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    signature = interpreter.get_signature_runner("serving_default")
    (index,) = [d["index"] for d in signature.get_input_details().values()]
    outputs = {name: d["index"] for name, d in signature.get_output_details().items()}
    del signature
    interpreter.resize_tensor_input(index, list(raw.shape), strict=False)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, raw)
    interpreter.invoke()
    return {name: interpreter.get_tensor(i) for name, i in outputs.items()}


def onnx_outputs(path: Path, raw: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: raw}), strict=True))


def test_savedmodel_on_raw_inputs_matches_the_run_model(run, raw_and_expected, tmp_path):
    raw, expected = raw_and_expected
    result = export(run, tmp_path / "saved", "--format", "savedmodel")
    outputs = savedmodel_outputs(tmp_path / "saved", raw)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert outputs["predicted"].tolist() == expected.argmax(axis=1).tolist()
    assert result["max_abs_diff"] <= 1e-5 and result["run_score"] == result["export_score"]
    assert result["export_bytes"] > 0 and result["export_latency_ms"] > 0


def test_folded_tflite_on_raw_inputs_matches_the_run_model(run, raw_and_expected, tmp_path):
    raw, expected = raw_and_expected
    result = export(run, tmp_path / "m.tflite", "--format", "tflite", "--fold-batch-norm")
    assert result["folded"] == ["input_batch_norm", "batch_norm_1", "batch_norm_2"]
    outputs = tflite_outputs(tmp_path / "m.tflite", raw)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-4)


@pytest.mark.skipif(not HAS_ONNX, reason="needs dnnlab[onnx]")
def test_onnx_on_raw_inputs_matches_the_run_model(run, raw_and_expected, tmp_path):
    raw, expected = raw_and_expected
    export(run, tmp_path / "m.onnx", "--format", "onnx")
    np.testing.assert_allclose(onnx_outputs(tmp_path / "m.onnx", raw)["probabilities"], expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("fold", [[], ["--fold-batch-norm"]], ids=["plain", "folded"])
def test_int8_tflite_keeps_the_class_of_nearly_every_standardized_test_row(run, tmp_path, fold):
    result = export(run, tmp_path / "q.tflite", "--format", "tflite", "--quantize", "int8", *fold)
    assert result["source"] == "the test split" and result["agreement"] >= 0.99
    # the output layer's 24 x 10 kernel is under TFLite's 1,024-weight minimum: it stays float32
    assert result["int8_layers"] == ["dense_1", "dense_2"]
    float_result = export(run, tmp_path / "f.tflite", "--format", "tflite", *fold)
    assert result["export_bytes"] < 0.6 * float_result["export_bytes"]
    assert float_result["int8_layers"] is None


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ONNX, reason="needs dnnlab[onnx]")
def test_folded_pruned_onnx_reports_its_sparsity(run, tmp_path):
    result = export(
        run, tmp_path / "p.onnx", "--format", "onnx", "--fold-batch-norm", "--prune-below", "0.01"
    )
    assert 0 < result["sparsity"] < 1 and result["agreement"] > 0.9


def test_a_run_without_a_test_split_is_verified_on_a_sample_of_its_training_split(tmp_path):
    spec = {
        "name": "no-test",
        "data": {
            "dataset": {"type": "synthetic", "shape": [6], "classes": 3, "train": 2400, "test": 0},
            "validation": 100,
        },
        "model": {"hidden": [8]},
        "training": {"epochs": 1, "batch_size": 64},
    }
    run = train_run(write_spec(tmp_path, spec), tmp_path / "runs")
    result = export(run, tmp_path / "saved", "--format", "savedmodel")
    assert result["source"] == "a sample of the training split (2,000 of 2,300 rows; no test split)"
    assert result["instances"] == 2000 and result["max_abs_diff"] <= 1e-5


def test_exports_of_a_run_with_text_labels_predict_what_predict_does(tmp_path):
    source = {"type": "csv", "path": str(species_csv(tmp_path / "train.csv")), "target": "species"}
    spec = {
        "name": "species",
        "data": {"dataset": source},
        "model": {"hidden": [8]},
        "training": {"epochs": 2},
    }
    run = train_run(write_spec(tmp_path, spec), tmp_path / "runs")
    new = species_csv(tmp_path / "new.csv", rows=30, label_column=None)
    predicted = CliRunner().invoke(app, ["predict", str(run), "--data", str(new), "--json"])
    expected = json.loads(predicted.stdout)
    raw = np.loadtxt(new, delimiter=",", skiprows=1, dtype="float32")
    exports = [("m.tflite", tflite_outputs), ("saved", savedmodel_outputs)]
    exports += [("m.onnx", onnx_outputs)] if HAS_ONNX else []
    for name, outputs_of in exports:
        fmt = {".tflite": "tflite", ".onnx": "onnx", "": "savedmodel"}[Path(name).suffix]
        result = export(run, tmp_path / name, "--format", fmt)
        assert result["agreement"] == 1.0 and result["run_score"] == result["export_score"]
        outputs = outputs_of(tmp_path / name, raw)
        labels = [v.decode() if isinstance(v, bytes) else v for v in outputs["predicted"].tolist()]
        assert labels == expected["predicted"], name
        assert outputs["predicted_index"].tolist() == expected["predicted_index"], name
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)


def test_bad_input_is_one_line_exit_2_and_no_file(run, tmp_path, monkeypatch):
    out = tmp_path / "bad.tflite"
    cases = [
        ["--format", "pmml", "--out", str(out)],
        ["--format", "tflite", "--out", str(tmp_path / "bad.onnx")],
        ["--format", "savedmodel", "--quantize", "int8", "--out", str(out)],
        ["--format", "tflite", "--prune-below", "0", "--out", str(out)],
    ]
    for options in cases:
        result = CliRunner().invoke(app, ["export", str(run), *options])
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "bad.onnx").exists()
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "run.json").write_text("{}")
    result = CliRunner().invoke(app, ["export", str(no_model), "--format", "tflite"])
    assert result.exit_code == 2 and "no model.keras" in result.stderr


def test_onnx_without_the_extra_says_how_to_install_it(run, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a)
    )
    result = CliRunner().invoke(
        app, ["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    )
    assert result.exit_code == 2 and "pip install 'dnnlab[onnx]'" in result.stderr
    assert not (tmp_path / "m.onnx").exists()
