"""Seeing a search: compare and report mark the trials a search paused or pruned and rank them
after the full-budget ones; the report of a search sweep draws the best-so-far curve, Optuna's
parameter importances and a parallel-coordinates figure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import read_json, tiny_spec

from dnnlab.results import search_report
from dnnlab.rundir.search_trials import read_search

ROOT = Path(__file__).resolve().parents[1]


def dnnlab(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "dnnlab", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A real tpe + asha search of 6 configurations of 3 epochs on digits: most are paused."""
    pytest.importorskip("optuna")
    folder = tmp_path_factory.mktemp("search")
    spec = folder / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(training={"epochs": 3}), sort_keys=False), encoding="utf-8")
    axes = [
        "-g",
        "training.optimizer.learning_rate=loguniform(0.001,0.1)",
        "-g",
        "model.activation=relu,tanh",
    ]
    result = dnnlab(
        "sweep", spec, *axes, "--search", "tpe", "--trials", "6", "--prune", "asha", "--jobs", "1",
        "--runs-dir", folder / "runs", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (folder / "runs").iterdir()
    return sweep_dir


def test_compare_marks_paused_trials_and_ranks_them_after_full_budget_ones(searched):
    record = read_json(searched / "sweep.json")
    status = {t["run"]: t["status"] for t in record["trials"]}
    assert "paused" in status.values() and "completed" in status.values()
    result = dnnlab("compare", searched, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["runs"]
    shown = [(Path(row["run"]).name, row["status"]) for row in rows]
    assert {name: s for name, s in shown} == status  # each run shows sweep.json's status
    statuses = [s for _, s in shown]
    first_stopped = statuses.index("paused")
    assert all(s == "paused" for s in statuses[first_stopped:])  # every full-budget run first
    paused = sum(s == "paused" for s in statuses)
    table = dnnlab("compare", searched)
    assert f"note: {paused} trial(s) a search stopped early" in table.stdout + table.stderr


def test_the_report_of_a_search_has_its_curve_importances_and_parallel_coordinates(searched, tmp_path):
    out = tmp_path / "report.html"
    result = dnnlab("report", searched, "--out", out)
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    section = page[
        page.index(f"<h2>Search: {searched.name}</h2>") : page.index("<h2>Hyperparameter importance")
    ]
    assert "6 trials of a <code>tpe</code> search with pruner <code>asha</code>" in section
    assert 'alt="best so far against trials and epochs spent" src="data:image/png;base64,' in section
    assert 'alt="parallel coordinates of the trials" src="data:image/png;base64,' in section
    assert "optuna.importance.get_param_importances" in section
    keys = re.findall(r"<tr><td><code>([^<]+)</code></td><td class=\"num\">", section)
    assert sorted(keys) == ["model.activation", "training.optimizer.learning_rate"]


def test_without_a_journal_the_report_says_so(searched, tmp_path):
    copy = tmp_path / searched.name
    copy.mkdir()
    (copy / "sweep.json").write_bytes((searched / "sweep.json").read_bytes())
    importances, note = search_report.optuna_importance(read_search(copy))
    assert (
        importances is None and note == "no study.journal in the sweep directory: no importance from Optuna"
    )


def test_best_so_far_counts_every_trial_and_its_epochs(searched):
    search = read_search(searched)
    points = search_report.best_so_far(search)
    assert [p[0] for p in points] == list(range(1, 7))
    assert points[-1][1] == sum(t["epochs_done"] for t in read_json(searched / "sweep.json")["trials"])
    values = [t.value for t in search.trials]
    assert points[-1][2] == min(values)  # val_loss: lower is better
    assert all(later[2] <= earlier[2] for earlier, later in zip(points, points[1:]))


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"search": {"goal": "sideways", "metric": "x"}, "trials": []}']
)
def test_a_damaged_sweep_json_reads_as_no_search(tmp_path, text):
    (tmp_path / "sweep.json").write_text(text, encoding="utf-8")
    assert read_search(tmp_path) is None
