"""Verdicts and `check` warnings that match what training does: a diverged network gets no verdict
drawn from its overflowed activations, and `check` warns where Géron, Hands-On Machine Learning,
ch. 11 does (no TensorFlow: rows and specs made here)."""

from __future__ import annotations

import math

from helpers import tiny_spec

from dnnlab.diagnostics.verdicts import verdicts
from dnnlab.spec.checks import run_checks
from dnnlab.spec.models import Spec

INF, NAN = math.inf, math.nan


def _row(layer, activation, gradient, weight, mean, std, dead=None, saturated=None):
    return {
        "layer": layer, "activation": activation, "gradient_norm": gradient, "weight_norm": weight,
        "update_ratio": None, "activation_mean": mean, "activation_std": std,
        "saturated_fraction": saturated, "dead_fraction": dead,
    }  # fmt: skip


def test_a_diverged_relu_network_gets_exploding_gradients_not_dead_units():
    # What `diagnose` measured after 10 SGD steps at learning rate 1e5 on digits: the weights
    # overflow, dense_2's ReLU outputs 0 everywhere, and every gradient norm is 0.
    rows = [
        _row("dense_1", "relu", 0.0, INF, 2.2e28, INF, dead=0.0),
        _row("dense_2", "relu", 0.0, INF, 0.0, 0.0, dead=1.0),
        _row("output", "softmax", 0.0, INF, 0.1, 0.3),
    ]
    found = {v["kind"]: v for v in verdicts(rows)}
    assert set(found) == {"exploding_gradients"}
    assert found["exploding_gradients"]["layers"] == ["dense_1", "dense_2", "output"]
    assert "diverged" in found["exploding_gradients"]["message"]
    # the same dead layer in a finite network is a dead-units verdict
    healthy = [_row("dense_1", "relu", 0.1, 3.0, 0.5, 0.8, 0.0), _row("dense_2", "relu", 0.1, 3.0, 0, 0, 1.0)]
    assert {v["kind"] for v in verdicts(healthy + [_row("output", "softmax", 0.2, 3.0, 0.1, 0.3)])} == {
        "dead_units"
    }


def test_a_diverging_selu_stack_gets_exploding_gradients_beside_broken_self_normalization():
    rows = [_row(f"dense_{i}", "selu", 1.0, NAN, NAN, NAN) for i in range(1, 5)]
    rows.append(_row("output", "softmax", 1.0, NAN, NAN, NAN))
    kinds = [v["kind"] for v in verdicts(rows)]
    assert "exploding_gradients" in kinds and "self_normalization_broken" in kinds


def _warnings(**overrides) -> dict[str, str]:
    spec = Spec.model_validate(tiny_spec(**overrides))
    return {f.key: f.message for f in run_checks(spec) if f.level == "warning"}


def test_check_warns_about_relu_with_unit_normal_weights_in_a_deep_stack():
    unit = {"type": "random_normal", "stddev": 1.0}
    found = _warnings(model={"hidden": [64] * 5, "initializer": unit})
    assert "explode with depth" in found["model.initializer"] and "he_normal" in found["model.initializer"]
    assert "model.initializer" not in _warnings(model={"hidden": [64] * 4, "initializer": unit})
    small = {"type": "random_normal", "stddev": 0.05}
    assert "model.initializer" not in _warnings(model={"hidden": [64] * 5, "initializer": small})


def test_check_warns_about_batch_norm_after_every_layer_of_a_deep_stack_at_a_small_rate():
    deep = {"hidden": [64] * 10, "normalization": "batch_norm"}
    found = _warnings(model=deep, training={"optimizer": {"type": "sgd", "learning_rate": 0.01}})
    assert "grows towards the input" in found["model.normalization"]
    assert "clip" not in found["model.normalization"]  # measured: clipping made that stack worse
    fast = _warnings(model=deep, training={"optimizer": {"type": "sgd", "learning_rate": 0.1}})
    assert "model.normalization" not in fast
    shallow = {"hidden": [64] * 9, "normalization": "batch_norm"}
    assert "model.normalization" not in _warnings(model=shallow)


def test_check_warns_that_a_fine_tune_rate_is_ignored_without_frozen_epochs(tmp_path):
    transfer = {"run": str(tmp_path / "a"), "fine_tune_learning_rate": 1e-4}
    found = _warnings(model={"transfer": {**transfer, "freeze_epochs": 0}})
    assert "ignored with freeze_epochs 0" in found["model.transfer.fine_tune_learning_rate"]
    frozen = _warnings(model={"transfer": {**transfer, "freeze_epochs": 1}})
    assert "model.transfer.fine_tune_learning_rate" not in frozen
