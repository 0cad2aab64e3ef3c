"""Per-layer diagnostics: `dnnlab diagnose` on specs and runs, layers.csv during training, the
initializers with a chosen scale, and the deep-sigmoid advice of `check`.

Each diagnose call on a spec builds the model and measures it on digits in this process; the
models are Géron's deep stacks with narrow layers, so the whole module stays fast.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import read_json, tiny_spec, train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.data.checked_spec import check_spec

runner = CliRunner()


def stack(depth: int, activation: str, **model) -> dict:
    return {
        "name": f"{activation}-{depth}",
        "data": {"dataset": "digits"},
        "model": {"hidden": [16] * depth, "activation": activation, **model},
        "training": {"optimizer": "sgd"},
    }


def diagnose_json(path: Path, *args: str) -> dict:
    result = runner.invoke(app, ["diagnose", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def kinds(diagnosis: dict) -> set[str]:
    return {verdict["kind"] for verdict in diagnosis["verdicts"]}


def test_deep_sigmoid_stack_vanishes_and_relu_he_cures_it(tmp_path):
    spec = write_spec(tmp_path, stack(10, "sigmoid", initializer="glorot_uniform"))
    plot = tmp_path / "figure.png"
    result = runner.invoke(app, ["diagnose", str(spec), "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    diagnosis = json.loads(result.stdout)
    names = [layer["name"] for layer in diagnosis["layers"]]
    assert names == [*(f"dense_{i}" for i in range(1, 11)), "output"]  # depth order
    vanishing = [v for v in diagnosis["verdicts"] if v["kind"] == "vanishing_gradients"]
    assert len(vanishing) == 1
    assert vanishing[0]["layers"][:2] == ["dense_1", "dense_2"]  # the lowest layers
    assert "He initialization" in vanishing[0]["message"]
    grads = [layer["gradient_norm"] for layer in diagnosis["layers"]]
    assert grads[0] < 1e-3 * grads[-1]
    assert plot.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "spec.yaml"]  # no run

    cured = diagnose_json(spec, "-o", "model.activation=relu", "-o", "model.initializer=he_normal")
    assert not kinds(cured) & {"vanishing_gradients", "exploding_gradients"}


def test_selu_self_normalizes_over_30_layers_unless_he_initialized(tmp_path):
    spec = write_spec(tmp_path, stack(30, "selu", initializer="lecun_normal", hidden=[64] * 30))
    diagnosis = diagnose_json(spec)
    assert "self_normalizing" in kinds(diagnosis)
    for layer in diagnosis["layers"][:-1]:
        assert abs(layer["activation_mean"]) <= 0.1 and 0.8 <= layer["activation_std"] <= 1.25

    broken = diagnose_json(spec, "-o", "model.initializer=he_normal")
    assert "self_normalizing" not in kinds(broken)
    (verdict,) = [v for v in broken["verdicts"] if v["kind"] == "self_normalization_broken"]
    assert "model.initializer" in verdict["message"] and "lecun_normal" in verdict["message"]


def test_gradient_norms_agree_with_a_gradient_tape(tmp_path):
    import keras
    import tensorflow as tf

    from dnnlab.model import probe
    from dnnlab.training import setup

    checked = check_spec(write_spec(tmp_path, stack(3, "tanh", normalization="batch_norm")))
    prepared = setup.prepare(checked.spec, checked.info.input_shape, None, None)
    model, dataset = prepared.model, prepared.dataset
    x, y = probe.probe_batch(dataset.x_train, dataset.y_train, 64, checked.spec.seed)
    moving = [v.numpy() for v in model.non_trainable_variables]
    rows, _ = probe.Prober(model, checked.spec.training.loss, x, y).measure()
    for variable, before in zip(model.non_trainable_variables, moving):
        np.testing.assert_array_equal(variable.numpy(), before)  # measuring changes nothing

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    with tf.GradientTape() as tape:
        h = tf.constant(x)
        for layer in model.layers:
            h = layer(h, training=isinstance(layer, keras.layers.BatchNormalization))
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, h))
    expected = [float(tf.norm(g)) for g in tape.gradient(loss, [d.kernel for d in dense])]
    np.testing.assert_allclose([r["gradient_norm"] for r in rows], expected, rtol=1e-4)
    for variable, before in zip(model.non_trainable_variables, moving):
        variable.assign(before)


def test_probe_batch_is_fixed_by_the_seed():
    from dnnlab.model.probe import probe_rows

    assert list(probe_rows(1000, 5, 42)) == list(probe_rows(1000, 5, 42))
    assert list(probe_rows(1000, 5, 42)) != list(probe_rows(1000, 5, 43))
    assert len(probe_rows(10, 256, 1)) == 10


def layers_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "layers.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_training_writes_layers_csv_without_changing_the_run(tmp_path):
    """One row per layer per measurement; resume neither repeats nor keeps replayed rows; the
    weights equal those of the same run without diagnostics."""
    spec = stack(3, "relu", normalization="batch_norm", dropout={"rate": 0.2})
    spec["training"] = {"epochs": 1, "batch_size": 64, "diagnostics": {"every": 1, "histograms": True}}
    path = write_spec(tmp_path, spec)
    run = train_run(path, tmp_path / "runs")
    rows = layers_rows(run)
    per_epoch = int(rows[4]["step"])  # 21 steps of 64 rows
    steps = [0, per_epoch]  # at initialization and after the epoch
    assert [int(r["step"]) for r in rows] == [s for s in steps for _ in range(4)]
    assert [r["epoch"] for r in rows[::4]] == ["0", "0"]
    assert [r["layer"] for r in rows[:4]] == ["dense_1", "dense_2", "dense_3", "output"]
    assert rows[0]["update_ratio"] == "" and float(rows[4]["update_ratio"]) > 0
    assert (run / "tensorboard" / "diagnostics").is_dir()

    plain = train_run(path, tmp_path / "plain", ["training.diagnostics=null"])
    import keras

    for a, b in zip(
        keras.models.load_model(run / "model.keras").get_weights(),
        keras.models.load_model(plain / "model.keras").get_weights(),
    ):
        np.testing.assert_array_equal(a, b)

    # A kill after an epoch's rows were written but before its commit: resume drops them.
    with open(run / "layers.csv", "a", encoding="utf-8") as handle:
        handle.write(f"1,{2 * per_epoch},1,dense_1,relu,16,1.0,1.0,,0.0,1.0,,0.0\n")
    from dnnlab.training import lifecycle

    result = lifecycle.resume(run, 2, ["test"], progress=False)
    assert result.status == "completed"
    rows = layers_rows(run)
    assert [int(r["step"]) for r in rows[::4]] == [*steps, 2 * per_epoch]
    assert len(rows) == 12
    assert read_json(run / "run.json")["epochs_done"] == 2

    diagnosis = json.loads(runner.invoke(app, ["diagnose", str(run), "--json"]).stdout)
    assert diagnosis["source"] == "run" and diagnosis["step"] == 2 * per_epoch
    assert [layer["name"] for layer in diagnosis["layers"]] == ["dense_1", "dense_2", "dense_3", "output"]


def test_diagnose_refuses_bad_input_in_one_line(tmp_path):
    missing = runner.invoke(app, ["diagnose", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such spec file" in missing.output
    assert "Traceback" not in missing.output
    (tmp_path / "fake").mkdir()
    not_a_run = runner.invoke(app, ["diagnose", str(tmp_path / "fake")])
    assert not_a_run.exit_code == 2 and "not a run directory" in not_a_run.output


def test_diagnostics_settings_are_validated(tmp_path):
    from dnnlab.errors import ConfigError

    path = write_spec(tmp_path, stack(2, "relu"))
    with pytest.raises(ConfigError, match="training.diagnostics.unit"):
        check_spec(path, ["training.diagnostics={unit: batch}"])
    with pytest.raises(ConfigError, match="training.diagnostics.every"):
        check_spec(path, ["training.diagnostics={every: 0}"])
    assert check_spec(path, ["training.diagnostics={}"]).spec.training.diagnostics.probe_size == 256


@pytest.mark.parametrize(
    ("initializer", "mean", "std"),
    [
        ({"type": "random_normal", "stddev": 1.0}, 0.0, 1.0),
        ({"type": "truncated_normal", "mean": 0.5, "stddev": 0.2}, 0.5, 0.2 * 0.88),
        ({"type": "random_uniform", "minval": 0.0, "maxval": 1.0}, 0.5, 12**-0.5),
    ],
)
def test_initializers_with_a_chosen_scale(tmp_path, initializer, mean, std):
    from dnnlab.model.build import build_model

    checked = check_spec(write_spec(tmp_path, stack(1, "sigmoid", hidden=[256], initializer=initializer)))
    kernel = build_model(checked.spec, checked.info.input_shape).get_layer("dense_1").kernel.numpy()
    assert kernel.mean() == pytest.approx(mean, abs=0.02)
    assert kernel.std() == pytest.approx(std, rel=0.05)


def test_random_uniform_needs_ordered_bounds(tmp_path):
    from dnnlab.errors import ConfigError

    path = write_spec(tmp_path, stack(2, "relu"))
    with pytest.raises(ConfigError, match="minval < maxval"):
        check_spec(path, ["model.initializer={type: random_uniform, minval: 1, maxval: 0}"])


def test_check_advises_against_a_deep_sigmoid_stack(tmp_path):
    path = write_spec(tmp_path, stack(10, "sigmoid"))
    messages = [str(w) for w in check_spec(path).warnings]
    assert any("sigmoid layers without batch norm" in m and "he_normal" in m for m in messages)
    cured = check_spec(path, ["model.normalization=batch_norm"]).warnings
    assert not any("sigmoid layers" in str(w) for w in cured)


SCIENCE = Path(__file__).resolve().parent.parent / "configs" / "science"
EXPECTED = {  # what README.md tells a user `dnnlab diagnose` shows for each shipped experiment
    "vanishing_sigmoid.yaml": {"vanishing_gradients"},
    "vanishing_cure_relu_he.yaml": set(),
    "vanishing_cure_batch_norm.yaml": set(),
    "selu_self_normalizing.yaml": {"self_normalizing"},
    "selu_broken_he.yaml": {"self_normalization_broken"},
    "selu_broken_unscaled.yaml": {"self_normalization_broken"},
    "deep_batch_norm_exploding.yaml": {"exploding_gradients"},
    "saturation_normal_sigmoid.yaml": {"saturation"},
}
# lr-find, mc-predict, and a pretraining comparison trained with `dnnlab train`
NOT_DIAGNOSE_EXPERIMENTS = {
    "lr_find_one_cycle.yaml",
    "mc_dropout_calibration.yaml",
    "pretrain_few_labels.yaml",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_experiments_give_their_documented_verdicts(name):
    assert sorted(p.name for p in SCIENCE.glob("*.yaml")) == sorted({*EXPECTED, *NOT_DIAGNOSE_EXPERIMENTS})
    assert kinds(diagnose_json(SCIENCE / name)) == EXPECTED[name]


def test_exploding_verdicts_on_growth_on_size_and_on_non_finite_gradients():
    from dnnlab.diagnostics.verdicts import verdicts

    def rows(grads):
        return [
            {"layer": f"dense_{i + 1}", "gradient_norm": g, "activation": "relu", "saturated_fraction": None,
             "dead_fraction": 0.0, "activation_mean": 0.5, "activation_std": 0.8}
            for i, g in enumerate(grads)
        ]  # fmt: skip

    def found(grads):
        return {v["kind"]: v["layers"] for v in verdicts(rows(grads))}

    assert found([230.0, 100.0, 1.0, 0.7]) == {"exploding_gradients": ["dense_1", "dense_2"]}
    assert found([2e3, 3e3, 1e3]) == {"exploding_gradients": ["dense_1", "dense_2"]}
    assert found([1.0, float("nan"), 1.0]) == {"exploding_gradients": ["dense_2"]}
    assert found([0.5, 1.0, 2.0]) == {}


# --- verdicts that say what was measured ---------------------------------------------------

RULE = "Rule of thumb (Géron, Hands-On Machine Learning, ch. 11), not a measurement"


def test_saturation_states_the_measured_fraction_and_labels_its_remedy_a_rule_of_thumb(tmp_path):
    """N(0, 1) weights saturate sigmoid units; Glorot is the book's advice, suggested, not a fix."""
    spec = stack(4, "sigmoid", initializer={"type": "random_normal", "stddev": 1.0})
    out = diagnose_json(write_spec(tmp_path, spec))
    (verdict,) = [v for v in out["verdicts"] if v["kind"] == "saturation"]
    first = out["layers"][0]
    assert first["saturated_fraction"] > 0.5 and verdict["layers"][0] == "dense_1"
    assert f"dense_1 {first['saturated_fraction']:.0%}" in verdict["message"]
    assert "derivative below 5% of its maximum" in verdict["message"]
    assert f"dense_1 {first['gradient_norm']:.2g}" in verdict["message"]
    assert RULE in verdict["message"] and "Remedy (" not in verdict["message"]
    assert {r["status"] for r in verdict["remedies"]} == {"suggested"}
    assert "initializer glorot_uniform" in [r["remedy"] for r in verdict["remedies"]]


def _rows(grads, updates=None, weights=None):
    n = len(grads)
    return [
        {"layer": "output" if i == n - 1 else f"dense_{i + 1}", "gradient_norm": g, "activation": "relu",
         "saturated_fraction": None, "dead_fraction": 0.0, "activation_mean": 0.5, "activation_std": 0.8,
         "update_ratio": None if updates is None else updates[i],
         "weight_norm": 11.0 if weights is None else weights[i]}
        for i, g in enumerate(grads)
    ]  # fmt: skip


def test_gradient_growth_at_initialization_that_does_not_last_is_reported_with_its_numbers():
    from dnnlab.diagnostics.verdicts import all_verdicts
    from dnnlab.rundir.layers_csv import Measurement

    start = Measurement(0, 0, _rows([230.0, 100.0, 0.7]))
    after = Measurement(0, 41, _rows([9.1, 5.0, 0.71], updates=[1.4, 0.2, 0.05], weights=[19.0, 11.0, 4.0]))
    end = Measurement(19, 820, _rows([1.0, 0.8, 0.39], updates=[0.02, 0.01, 0.01]))
    found = {v["kind"]: v for v in all_verdicts([start, after, end], None)}
    assert set(found) == {"exploding_gradients", "exploding_gradients_subsided"}
    assert found["exploding_gradients"]["at"] == "at initialization"
    subsided = found["exploding_gradients_subsided"]
    assert subsided["layers"] == ["dense_1"]
    numbers = ["2.3e+02 against output 0.7, 329x", "after 41 steps", "9.1 against 0.71 (12.8x)", "(2.6x)"]
    for measured in [*numbers, "dense_1 1.4 (weight norm 11 to 19)"]:
        assert measured in subsided["message"]
    # still exploding at the end: no such verdict, the end gets its own exploding verdict
    lasting = Measurement(19, 820, _rows([230.0, 100.0, 0.7]))
    kinds_ = [v["kind"] for v in all_verdicts([start, after, lasting], None)]
    assert kinds_ == ["exploding_gradients", "exploding_gradients"]
    # measured at initialization only: it says so, and how to measure more
    (alone,) = all_verdicts([start], None)
    assert "Measured at initialization only: `--steps N`" in alone["message"]
    (one_epoch,) = all_verdicts([start], None, epoch_steps=41)
    assert "`--steps 41` measures again after one epoch" in one_epoch["message"]
    assert "Measured at initialization only" not in found["exploding_gradients"]["message"]


def test_still_learning_needs_a_falling_training_loss_and_a_late_best_validation_loss():
    from dnnlab.diagnostics.over_training import still_learning

    loss = [2.0, 1.8, 1.6, 1.5, 1.45, 1.39, 1.36, 1.32]
    val = [2.0, 1.7, 1.5, 1.4, 1.3, 1.25, 1.2, 1.16]
    history = {"loss": loss, "val_loss": val, "accuracy": [0.58] * 8, "val_accuracy": [0.65] * 8}
    (verdict,) = still_learning(history, batch_norm=True)
    assert "fell from 1.39 at epoch 6 to 1.32 at epoch 8 (-5%)" in verdict["message"]
    assert "best val_loss (1.16) came at epoch 8" in verdict["message"]
    assert "accuracy 0.58 (training mode: batch norm on each batch's statistics)" in verdict["message"]
    assert "val_accuracy 0.65 (inference mode" in verdict["message"]
    assert "training mode" not in still_learning(history, batch_norm=False)[0]["message"]
    assert still_learning({**history, "loss": [2.0, 1.8, 1.6, 1.5, 1.45, 1.39, 1.38, 1.37]}, True) == []
    assert still_learning({**history, "val_loss": [2.0, 1.0, 1.5, 1.4, 1.3, 1.25, 1.2, 1.16]}, True) == []
    assert still_learning({"loss": loss[:3], "val_loss": val[:3]}, True) == []  # too short to say
    assert still_learning({"loss": loss}, True) == []  # no validation


def test_diagnose_run_says_a_run_still_learning_and_suggests_twice_its_epochs(tmp_path):
    tiny = tiny_spec(training={"epochs": 4, "diagnostics": {"every": 1}})
    spec = write_spec(tmp_path, tiny)
    run = train_run(spec, tmp_path / "runs")
    with open(run / "metrics.csv", newline="", encoding="utf-8") as handle:
        loss = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert loss[3] < 0.98 * loss[2]  # the premise: four epochs of a tiny net on digits still learn
    out = diagnose_json(run)
    (verdict,) = [v for v in out["verdicts"] if v["kind"] == "still_learning"]
    assert f"fell from {loss[2]:.3g} at epoch 3 to {loss[3]:.3g} at epoch 4" in verdict["message"]
    assert verdict["at"] == "at the end of training"
    assert verdict["remedies"] == [
        {"remedy": "twice the epochs", "overrides": ["training.epochs=8"], "status": "suggested"}
    ]


@pytest.mark.slow
def test_the_deep_batch_norm_stacks_growth_at_initialization_is_gone_after_one_epoch():
    """README's table: 328x at initialization, about 13x after one epoch (41 steps of 32 rows)."""
    out = diagnose_json(SCIENCE / "deep_batch_norm_exploding.yaml", "--steps", "41")
    assert kinds(out) == {"exploding_gradients", "exploding_gradients_subsided"}
    grads = [layer["gradient_norm"] for layer in out["layers"]]
    assert grads[0] < 100 * grads[-1]
    initial = [layer["gradient_norm"] for layer in out["initial_layers"]]
    assert initial[0] > 100 * initial[-1]
    subsided = next(v for v in out["verdicts"] if v["kind"] == "exploding_gradients_subsided")
    assert f"({grads[0] / grads[-1]:.1f}x)" in subsided["message"] and "dense_1" in subsided["layers"]
