"""`dnnlab lr-find`: the learning-rate range test that picks 1cycle's max_lr.

The end-to-end checks run the real command in process on scikit-learn's digits (the quickstart
spec itself), through Typer's CliRunner so stdout and stderr are separate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import read_metrics, start, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.diagnostics import lr_finder

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
runner = CliRunner()

TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {
        "dataset": {"type": "synthetic", "shape": [8], "classes": 3, "train": 400, "test": 50},
        "validation": 0.1,
    },
    "model": {"hidden": [16]},
    "training": {"batch_size": 32, "optimizer": {"type": "sgd"}},
}


def lr_find(*args):
    return runner.invoke(app, ["lr-find", *map(str, args)])


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> tuple[dict, Path, Path]:
    """`dnnlab lr-find configs/quickstart.yaml --json --plot FILE` run once, in an empty folder."""
    folder = tmp_path_factory.mktemp("lr-find")
    plot = folder / "lr.png"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = lr_find(QUICKSTART, "--json", "--plot", plot)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), folder, plot, result.stderr


def test_quickstart_suggests_a_rate_for_one_cycle(quickstart):
    payload, _, _, stderr = quickstart
    assert 1e-4 <= payload["suggestion"] <= 0.5
    assert payload["stop"] == "exploded"  # the expected end, with exit code 0
    assert f"max_lr: {payload['suggestion']:.3g}" in payload["override"]
    assert payload["override"] in stderr  # the exact -o line to train with
    assert payload["min_loss_rate_over_10"] == pytest.approx(payload["min_loss_rate"] / 10)


def test_one_loss_per_growing_rate(quickstart):
    payload = quickstart[0]
    rates, losses = payload["learning_rates"], payload["losses"]
    assert len(rates) == len(losses) == len(payload["raw_losses"]) == payload["steps"] > 10
    assert rates[0] == pytest.approx(1e-7)
    ratios = np.diff(np.log(rates))
    assert np.all(ratios > 0) and np.allclose(ratios, math.log(10 / 1e-7) / 299)  # exponential, per step
    assert all(math.isfinite(v) for v in losses)
    running = payload["running_losses"]  # the moving average the stop rule watches
    assert running[-1] > lr_finder.EXPLOSION_FACTOR * min(running)  # stopped where it exploded
    assert max(running[:-1]) <= lr_finder.EXPLOSION_FACTOR * min(running[:-1])


def _half_fall_rate(rates, values, start, low):
    """The first rate from which the loss (median of 5 steps, looking ahead) is at most halfway
    from its start to its low."""
    middle = (start + low) / 2
    return next(r for i, r in enumerate(rates) if np.median(values[i : i + 5]) <= middle)


def test_the_smoothed_curve_falls_where_the_batch_losses_do(quickstart):
    payload = quickstart[0]
    rates, raw, smoothed = payload["learning_rates"], payload["raw_losses"], payload["losses"]
    start, low = float(np.median(raw[:10])), min(smoothed)
    ratio = _half_fall_rate(rates, smoothed, start, low) / _half_fall_rate(rates, raw, start, low)
    assert 0.5 <= ratio <= 2.0, ratio  # the moving average alone lagged about 7x
    assert payload["steepest_rate"] <= payload["suggestion"] < payload["min_loss_rate"]
    assert "falls clearly" in payload["method"]


def test_writes_the_plot_and_no_run_directory(quickstart):
    _, folder, plot, _ = quickstart
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in folder.iterdir()) == ["lr.png"]


@pytest.mark.slow
def test_one_cycle_at_the_suggestion_reaches_90_percent(quickstart, tmp_path):
    """The issue's check: 10 epochs of 1cycle at the suggested max_lr."""
    max_lr = quickstart[0]["suggestion"]
    overrides = [f"training.schedule={{type: one_cycle, max_lr: {max_lr}}}", "training.epochs=10"]
    result = start(QUICKSTART, tmp_path / "runs", overrides)
    assert result.status == "completed"
    assert max(float(row["val_accuracy"]) for row in read_metrics(result.run_dir)) > 0.9


def test_a_loss_that_overflows_ends_the_test_with_exit_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, TINY)
    result = lr_find(spec, "--min", "1e-3", "--max", "1e12", "--steps", "40", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # valid JSON: no NaN recorded
    assert payload["stop"] in ("exploded", "non_finite")
    assert len(payload["learning_rates"]) == len(payload["losses"]) < 40
    assert not (tmp_path / "runs").exists()


def test_without_json_stdout_is_the_suggestion(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, TINY)
    result = lr_find(spec, "--min", "1e-4", "--max", "100", "--steps", "60")
    assert result.exit_code == 0, result.stderr
    assert "suggestion" in result.stderr
    if result.stdout.strip():
        assert float(result.stdout) > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--min", "0"], "--min must be a positive rate"),
        (["--min", "1", "--max", "0.1"], "--max must be a rate above --min"),
        (["--steps", "3"], "--steps must be at least"),
        (["--plot", "missing/lr.png"], "does not exist"),
        (["-o", "training.batch_size=0"], "training.batch_size"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, TINY)
    result = lr_find(spec, *args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_suggestion_is_the_largest_rate_still_falling_clearly_before_the_minimum():
    rates = lr_finder.rates(1e-6, 1.0, 200)
    x = np.log10(rates)
    # A loss that falls fastest at 1e-3 (a logistic step in log10 of the rate), then blows up.
    losses = 1.0 + 2.0 / (1.0 + np.exp(4 * (x + 3))) + np.where(x > -1, 50 * (x + 1) ** 2, 0.0)
    suggestion, minimum, steepest = lr_finder.suggest(list(rates), list(losses))
    assert steepest == pytest.approx(1e-3, rel=0.1)
    # the logistic's slope is half its steepest where 4|x + 3| = 1.76: x = -2.56
    assert math.log10(suggestion) == pytest.approx(-2.56, abs=0.05)
    assert -1.2 < math.log10(minimum) < -0.8
    assert lr_finder.suggest([1e-3, 1e-2], [1.0, 2.0]) == (None, 1e-3, None)  # no descent: no suggestion


def test_centred_smoothing_does_not_shift_a_step():
    values = [2.0] * 50 + [1.0] * 50
    curve = lr_finder.centred(values, 10)
    assert curve[49] > 1.5 > curve[50] and curve[0] == 2.0 and curve[-1] == 1.0
    assert curve[39] == pytest.approx(2.0) and curve[60] == pytest.approx(1.0)  # blurred only within 10 steps


def test_science_experiment_spec_is_valid():
    from dnnlab.data.checked_spec import check_spec

    checked = check_spec(CONFIGS / "science" / "lr_find_one_cycle.yaml")
    assert checked.warnings == []
    assert checked.spec.training.schedule.type == "one_cycle"
