"""What `dnnlab` prints, as a user's shell sees it: real processes, no $COLUMNS, long paths.

stdout carries only the result (the run directory, or one JSON object); stderr only dnnlab's
own lines, each whole on one line however long its path, and none of TensorFlow's C++ log
lines. Epochs count from 1 in everything printed for people.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_metrics, write_spec

TINY = {
    "name": "streams",
    "seed": 7,
    "data": {"dataset": "digits", "validation": 0.15, "scaling": "standardize"},
    "model": {"hidden": [16], "dropout": {"type": "dropout", "rate": 0.2, "where": "hidden"}},
    "training": {"epochs": 3, "optimizer": {"type": "nadam", "learning_rate": 0.01}},
}
TENSORFLOW_LOG_MARKS = ("E0000", "W0000", "I0000", "node_def_util")
LONG_NAME = "a-very-long-folder-name-that-no-terminal-of-80-columns-could-hold-on-one-line"


def dnnlab(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "dnnlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def assert_clean_stderr(stderr: str) -> list[str]:
    """No TensorFlow log line and no Python warning; returns the lines."""
    lines = stderr.splitlines()
    for line in lines:
        assert not any(mark in line for mark in TENSORFLOW_LOG_MARKS), line
        assert "Warning" not in line, line
    return lines


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("streams") / LONG_NAME / LONG_NAME


@pytest.fixture(scope="module")
def trained(long_dir) -> subprocess.CompletedProcess:
    spec = write_spec(long_dir / "specs", TINY)
    return dnnlab("train", spec, "--runs-dir", long_dir / "runs")


def test_train_prints_only_the_run_directory_on_stdout(trained, long_dir):
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (long_dir / "runs").iterdir()
    assert trained.stdout == f"{run_dir}\n"


def test_train_stderr_is_the_plan_progress_and_one_end_line(trained):
    lines = assert_clean_stderr(trained.stderr)
    assert lines[0].startswith("XLA off: compile ~")  # the execution plan's choice and why
    assert [line.split()[:2] for line in lines[1:-1]] == [
        ["epoch", "1/3"],
        ["epoch", "2/3"],
        ["epoch", "3/3"],
    ]
    assert lines[-1].startswith("completed after 3 epoch(s); best val_loss ")


def test_the_end_line_counts_epochs_from_one(trained):
    rows = read_metrics(Path(trained.stdout.strip()))
    best_index = min(range(len(rows)), key=lambda i: float(rows[i]["val_loss"]))
    end = trained.stderr.splitlines()[-1]
    assert f" at epoch {best_index + 1}; test accuracy " in end, (end, rows)  # then the test scores
    assert int(rows[best_index]["epoch"]) == best_index  # metrics.csv keeps the 0-based index


def test_quiet_train_prints_the_run_directory_and_nothing_else(long_dir):
    spec = write_spec(long_dir / "specs", TINY, "quiet.yaml")
    done = dnnlab("train", spec, "--runs-dir", long_dir / "quiet-runs", "-o", "training.epochs=1", "--quiet")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (long_dir / "quiet-runs").iterdir()
    assert done.stdout == f"{run_dir}\n"
    assert done.stderr == ""


def test_mc_predict_stderr_is_clean_and_its_lines_whole(trained, long_dir):
    run_dir = Path(trained.stdout.strip())
    out = long_dir / "mc.csv"
    done = dnnlab("mc-predict", run_dir, "--samples", 3, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seed"] == 0  # reproducible by default
    lines = assert_clean_stderr(done.stderr)
    assert f"wrote {out}" in lines
    assert f"{run_dir}: 360 instances from test, 3 samples, seed 0" in lines
