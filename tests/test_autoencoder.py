"""Autoencoders as specs (Géron, Hands-On Machine Learning, ch. 11 and 17): the reconstruction
loss falls, tied decoders share the encoder's kernels through a save and load, noise acts in
training only, an interrupted run resumes exactly, and commands that need classes refuse one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import _merge, read_json, read_metrics, start, tiny_spec, without_seconds, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.data import datasets
from dnnlab.data.checked_spec import check_spec
from dnnlab.errors import ConfigError
from dnnlab.model.build import build_model, load_model
from dnnlab.model.layers import DenseTranspose
from dnnlab.training import lifecycle, session

runner = CliRunner()


def autoencoder_spec(**overrides):
    base = tiny_spec(
        name="ae",
        data={"task": "autoencoder", "scaling": "unit"},
        model={"hidden": [16, 8]},
        training={"epochs": 4, "batch_size": 64},
    )
    return _merge(base, overrides)


def test_reconstruction_loss_falls_and_targets_are_inputs(tmp_path):
    result = start(write_spec(tmp_path, autoencoder_spec()), tmp_path / "runs")
    assert result.status == "completed"
    rows = read_metrics(result.run_dir)
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    config = (result.run_dir / "config.yaml").read_text()
    assert "loss: binary_crossentropy" in config  # inputs in [0, 1]
    model = load_model(result.run_dir / "model.keras")
    dense_layers = [layer.name for layer in model.layers if layer.count_params()]
    assert dense_layers == [
        "dense_1",
        "dense_2",
        "decoder_1",
        "output",
    ]
    assert model.output_shape == (None, 64)
    assert read_json(result.run_dir / "preprocessing.json")["task"] == "autoencoder"


def test_standardized_inputs_get_mse_and_a_linear_output(tmp_path):
    checked = check_spec(write_spec(tmp_path, autoencoder_spec(data={"scaling": "standardize"})))
    assert checked.spec.training.loss == "mse"
    assert checked.spec.model.output.activation.type == "linear"


def test_tied_decoder_uses_the_encoder_kernels_after_a_round_trip(tmp_path):
    spec = autoencoder_spec(model={"autoencoder": {"tied": True}})
    result = start(write_spec(tmp_path, spec), tmp_path / "runs")
    assert result.status == "completed"
    model = load_model(result.run_dir / "model.keras")
    decoder, output = model.get_layer("decoder_1"), model.get_layer("output")
    assert isinstance(decoder, DenseTranspose) and isinstance(output, DenseTranspose)
    assert [w.shape for w in decoder.weights] == [(16,)]  # only its bias: the kernel is dense_2's
    assert DenseTranspose.from_config(decoder.get_config()).get_config() == decoder.get_config()
    x = np.random.default_rng(0).random((3, 64)).astype("float32")
    d1, d2 = model.get_layer("dense_1"), model.get_layer("dense_2")
    code = np.maximum(x @ d1.kernel.numpy() + d1.bias.numpy(), 0)
    code = np.maximum(code @ d2.kernel.numpy() + d2.bias.numpy(), 0)
    hidden = np.maximum(code @ d2.kernel.numpy().T + decoder.bias.numpy(), 0)
    expected = 1 / (1 + np.exp(-(hidden @ d1.kernel.numpy().T + output.bias.numpy())))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    untied = start(write_spec(tmp_path / "u", autoencoder_spec()), tmp_path / "runs")
    assert (
        load_model(result.run_dir / "model.keras").count_params()
        < load_model(untied.run_dir / "model.keras").count_params()
    )


@pytest.mark.parametrize("noise", [{"type": "gaussian", "stddev": 0.5}, {"type": "dropout", "rate": 0.5}])
def test_noise_acts_in_training_only(tmp_path, noise):
    checked = check_spec(write_spec(tmp_path, autoencoder_spec(model={"autoencoder": {"noise": noise}})))
    model = build_model(checked.spec, checked.info.input_shape)
    x = np.full((4, 64), 0.5, dtype="float32")
    assert np.array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())
    assert not np.allclose(model(x, training=True).numpy(), model(x, training=False).numpy())


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    spec = autoencoder_spec(
        model={"autoencoder": {"tied": True, "noise": {"type": "gaussian", "stddev": 0.2}}},
        training={"early_stopping": {"patience": 5}},
    )
    path = write_spec(tmp_path, spec)
    whole = start(path, tmp_path / "whole")
    record = session.Session.record_epoch

    def record_then_interrupt(self, epoch, *args, **kwargs):
        record(self, epoch, *args, **kwargs)
        if epoch + 1 == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(session.Session, "record_epoch", record_then_interrupt)
        first = start(path, tmp_path / "parts")
    assert first.status == "interrupted"
    resumed = lifecycle.resume(first.run_dir, None, ["test"])
    assert resumed.status == "completed"

    assert without_seconds(read_metrics(resumed.run_dir)) == without_seconds(read_metrics(whole.run_dir))
    a = load_model(resumed.run_dir / "model.keras").get_weights()
    b = load_model(whole.run_dir / "model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow  # two processes that import TensorFlow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    """`dnnlab train` of a denoising autoencoder killed (SIGKILL: no handler runs) at the third
    write of metrics.csv, the commit of epoch 2; `dnnlab train --resume` equals the
    uninterrupted run."""
    spec = autoencoder_spec(model={"autoencoder": {"tied": True, "noise": {"type": "dropout", "rate": 0.2}}})
    path = write_spec(tmp_path, spec)
    whole = start(path, tmp_path / "whole")
    runs = tmp_path / "killed"
    injector = str(Path(__file__).with_name("fault_injection.py"))
    command = [
        sys.executable,
        injector,
        "kill",
        "metrics.csv",
        "3",
        "train",
        str(path),
        "--runs-dir",
        str(runs),
    ]
    done = subprocess.run([*command, "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr
    (run_dir,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert read_json(run_dir / "run.json")["status"] == "running"  # nobody was left to say otherwise
    assert read_json(run_dir / "state.json")["epochs_done"] == 1
    resumed = subprocess.run(
        [sys.executable, "-m", "dnnlab", "train", "--resume", str(run_dir), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr

    assert read_json(run_dir / "run.json")["status"] == "completed"
    assert without_seconds(read_metrics(run_dir)) == without_seconds(read_metrics(whole.run_dir))
    a = load_model(run_dir / "model.keras").get_weights()
    b = load_model(whole.run_dir / "model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"model": {"autoencoder": {"tied": True}}, "data": {"task": None}}, "model.autoencoder"),
        ({"model": {"output": {"units": 10}}}, "model.output.units"),
        ({"model": {"hidden": []}}, "model.hidden"),
        ({"data": {"unlabeled": "rest"}}, "data.unlabeled"),
    ],
)
def test_bad_autoencoder_specs_are_one_line(tmp_path, overrides, key):
    spec = autoencoder_spec(**overrides)
    if spec["data"].get("task") is None:
        del spec["data"]["task"]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as raised:
        check_spec(write_spec(tmp_path, spec))
    assert "\n" not in str(raised.value)


def test_mc_predict_refuses_an_autoencoder_run(tmp_path):
    result = start(write_spec(tmp_path, autoencoder_spec(training={"epochs": 1})), tmp_path / "runs")
    before = sorted(p.name for p in result.run_dir.rglob("*"))
    for args in (
        ["mc-predict", str(result.run_dir), "--samples", "2"],
        ["export", str(result.run_dir), "--format", "savedmodel"],
    ):
        out = runner.invoke(app, args)
        assert out.exit_code == 2, out.output
        assert "autoencoder run" in out.output and len(out.output.strip().splitlines()) == 1
    assert sorted(p.name for p in result.run_dir.rglob("*")) == before


def test_validation_and_test_rows_are_never_pretrained_on(tmp_path):
    """The autoencoder with `unlabeled: rest` trains on every training row and no other: a marker
    planted in the validation and test rows is absent from its training data."""
    spec = autoencoder_spec(data={"train_size": 100, "unlabeled": "rest", "scaling": "none"})
    checked = check_spec(write_spec(tmp_path, spec))
    labelled = tiny_spec(data={"train_size": 100, "scaling": "none"})
    classifier = check_spec(write_spec(tmp_path, labelled, "c.yaml"))
    held = datasets.load(classifier.spec.data)
    ae = datasets.load(checked.spec.data)
    assert len(ae.x_train) > 100 and np.array_equal(ae.x_train, ae.y_train)
    assert np.array_equal(ae.x_train[:100], held.x_train)
    assert np.array_equal(ae.x_val, held.x_val) and np.array_equal(ae.x_test, held.x_test)
    train_rows = {row.tobytes() for row in ae.x_train}
    assert not any(row.tobytes() in train_rows for row in held.x_val)
    assert not any(row.tobytes() in train_rows for row in held.x_test)


MARKER = 12345.0


def test_a_marker_in_validation_and_test_rows_never_reaches_pretraining(tmp_path):
    """Validation rows (the first training rows) and test rows carry a marker value; an
    autoencoder trained on every other row (`unlabeled: rest`) never sees it."""
    rng = np.random.default_rng(0)
    x_train, x_test = rng.random((120, 5)), rng.random((30, 5))
    x_train[:20, 0] = MARKER  # data.validation: 20 takes these rows
    x_test[:, 1] = MARKER
    path = tmp_path / "marked.npz"
    np.savez(path, x_train=x_train, y_train=np.arange(120) % 3, x_test=x_test, y_test=np.arange(30) % 3)
    data = {"dataset": {"type": "npz", "path": str(path)}, "validation": 20, "scaling": "none"}
    spec = autoencoder_spec(data={**data, "train_size": 10, "unlabeled": "rest"})
    ae = datasets.load(check_spec(write_spec(tmp_path, spec)).spec.data)
    assert len(ae.x_train) == 100
    assert MARKER not in ae.x_train and MARKER not in ae.y_train
    assert MARKER in ae.x_val and MARKER in ae.x_test


def test_unlabeled_rest_in_a_classifier_keeps_train_size_labels_and_fits_scaling_on_all(tmp_path):
    spec = tiny_spec(data={"train_size": 100, "unlabeled": "rest"})
    data = datasets.load(check_spec(write_spec(tmp_path, spec)).spec.data)
    plain = datasets.load(check_spec(write_spec(tmp_path, tiny_spec(), "plain.yaml")).spec.data)
    assert len(data.x_train) == len(data.y_train) == 100
    assert len(data.x_unlabeled) == len(plain.x_train) - 100
    np.testing.assert_allclose(data.scaling.offset, plain.scaling.offset, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([data.x_train, data.x_unlabeled]), plain.x_train, rtol=1e-5)


# --- reusing an autoencoder's encoder --------------------------------------------------------


def test_a_classifier_of_100_labelled_digits_reuses_an_encoder_and_records_its_source(tmp_path):
    """Unsupervised pretraining (Géron, ch. 11): an autoencoder on every training row, then a
    classifier of the first 100 labelled rows that starts from its encoder (batch norm included)."""
    shared = {"model": {"hidden": [16, 8], "normalization": "batch_norm"}}
    data = {"train_size": 100, "unlabeled": "rest"}
    ae = start(write_spec(tmp_path, autoencoder_spec(data=data, **shared), "ae.yaml"), tmp_path / "runs")
    assert ae.status == "completed"
    transfer = {"run": str(ae.run_dir), "freeze_epochs": 3}
    classifier = tiny_spec(
        name="clf", data=data, training={"epochs": 3}, model={**shared["model"], "transfer": transfer}
    )
    result = start(write_spec(tmp_path, classifier, "clf.yaml"), tmp_path / "runs")
    assert result.status == "completed"
    state = read_json(result.run_dir / "state.json")["transfer"]
    reused = ["dense_1", "batch_norm_1", "dense_2", "batch_norm_2"]
    assert state["layers"] == reused
    assert state["source"]["run"] == str(ae.run_dir)
    assert state["source"]["task"] == "autoencoder" and state["source"]["name"] == "ae"
    assert read_json(result.run_dir / "run.json")["transfer"]["layers"] == reused
    trained, encoder = load_model(result.run_dir / "model.keras"), load_model(ae.run_dir / "model.keras")
    for name in reused:  # frozen for every epoch: the encoder's weights, batch norm's statistics too
        for a, b in zip(
            trained.get_layer(name).get_weights(), encoder.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    assert len(read_metrics(result.run_dir)) == 3 and "accuracy" in read_metrics(result.run_dir)[0]


def test_reusing_more_layers_than_the_encoder_has_is_one_line(tmp_path):
    ae = start(write_spec(tmp_path, autoencoder_spec(training={"epochs": 1}), "ae.yaml"), tmp_path / "runs")
    classifier = tiny_spec(model={"hidden": [16, 8, 4], "transfer": {"run": str(ae.run_dir)}})
    with pytest.raises(ConfigError, match="dense_3") as raised:
        start(write_spec(tmp_path, classifier, "clf.yaml"), tmp_path / "runs", name="deeper")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "runs" / "deeper").exists()


# --- unlabelled files ------------------------------------------------------------------------


def unlabelled_files(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((200, 6))
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x_train=x)
    csv = tmp_path / "inputs.csv"
    csv.write_text("a,b,c,d,e,f\n" + "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in x))
    return {
        "npz": {"type": "npz", "path": str(npz)},
        "csv": {"type": "csv", "path": str(csv), "target": None},
    }


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_an_autoencoder_trains_on_a_file_without_labels(tmp_path, kind):
    source = unlabelled_files(tmp_path)[kind]
    spec = autoencoder_spec(data={"dataset": source}, model={"hidden": [4]}, training={"epochs": 3})
    result = start(write_spec(tmp_path, spec), tmp_path / "runs")
    assert result.status == "completed"
    losses = [float(row["loss"]) for row in read_metrics(result.run_dir)]
    assert losses[-1] < losses[0]
    assert result.test is not None  # 20% held out for test, as for a labelled file


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_a_classifier_of_a_file_without_labels_is_one_line_and_writes_nothing(tmp_path, kind):
    source = unlabelled_files(tmp_path)[kind]
    spec_path = write_spec(tmp_path, tiny_spec(data={"dataset": source}))
    out = runner.invoke(app, ["train", str(spec_path), "--runs-dir", str(tmp_path / "runs")])
    assert out.exit_code == 2, out.output
    assert "has no labels" in out.output and "data.task: autoencoder" in out.output
    assert len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
