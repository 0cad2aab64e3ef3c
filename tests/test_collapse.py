"""A run whose loss explodes and leaves the model near chance ends `diverged`, exit 1, with the
same remedies as a NaN run; slow or unstable runs that keep learning still complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.training.callbacks.divergence import CollapseRule, chance_accuracy

runner = CliRunner()


def train(tmp_path, spec):
    spec_path = write_spec(tmp_path, spec)
    return runner.invoke(app, ["train", str(spec_path), "--runs-dir", str(tmp_path / "runs")])


def test_an_exploded_loss_at_chance_has_collapsed():
    rule = CollapseRule(initial_loss=2.3, chance_accuracy=0.1)
    values, reason = rule.collapsed({"loss": 460.0, "accuracy": 0.1, "val_loss": 470.0})
    assert values == {"loss": 460.0, "accuracy": 0.1}
    assert "100 times" in reason and "near chance" in reason


@pytest.mark.parametrize(
    "logs",
    [
        {"loss": 2.4, "accuracy": 0.1},  # stalled (a vanishing-gradient stack): near its initial loss
        {"loss": 600.0, "accuracy": 0.57},  # a high rate that keeps learning: far above chance
        {"loss": 200.0, "accuracy": 0.1},  # below the explosion factor
    ],
)
def test_stalled_or_learning_runs_have_not_collapsed(logs):
    assert CollapseRule(initial_loss=2.3, chance_accuracy=0.1).collapsed(logs) is None


def test_without_accuracy_only_a_far_larger_explosion_counts():
    rule = CollapseRule(initial_loss=1.0, chance_accuracy=None)
    assert rule.collapsed({"loss": 5_000.0}) is None
    assert rule.collapsed({"loss": 20_000.0})[0] == {"loss": 20_000.0}


def test_chance_is_the_share_of_the_most_frequent_class():
    assert chance_accuracy([0, 0, 0, 1], "classification") == 0.75
    assert chance_accuracy([0.5, 1.5], "regression") is None


SPEC = {
    "name": "collapse",
    "data": {"dataset": "digits"},
    "model": {"hidden": [32], "activation": "relu"},
    "training": {"epochs": 3, "optimizer": {"type": "sgd", "learning_rate": 1000, "clipnorm": 1.0}},
}


def test_sgd_at_rate_1000_on_digits_ends_diverged_with_a_remedy(tmp_path):
    result = runner.invoke(
        app, ["train", str(write_spec(tmp_path, SPEC)), "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 1, result.output
    assert "training diverged in epoch 2: loss 1.69e+04, accuracy 0.184" in result.stderr
    assert "near chance" in result.stderr and "Try a lower learning rate" in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "diverged" and record["epochs_done"] == 1
    assert record["divergence"]["epoch"] == 1 and record["initial_loss"] == pytest.approx(3.1, abs=0.05)


def test_a_high_but_stable_rate_that_keeps_learning_completes(tmp_path):
    spec = {**SPEC, "model": {"hidden": [32], "activation": "tanh"}, "training": {**SPEC["training"]}}
    spec["training"]["optimizer"] = {"type": "sgd", "learning_rate": 1000}
    result = runner.invoke(
        app, ["train", str(write_spec(tmp_path, spec)), "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output


def test_the_vanishing_sigmoid_science_config_still_completes(tmp_path):
    """Glorot & Bengio's stalled sigmoid stack: slow, but sane, so not diverged."""
    config = Path(__file__).resolve().parent.parent / "configs" / "science" / "vanishing_sigmoid.yaml"
    args = ["train", str(config), "-o", "training.epochs=2", "--runs-dir", str(tmp_path / "runs"), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
