"""Checkpoints and metrics under damage (docs/faults.md, "Checkpoints and metrics").

A tiny run is interrupted after 3 of 4 epochs, a file of it is damaged (truncated, replaced by
another run's, cut mid-row, edited) as a crash, a full disk or a hand can leave it, and
`--resume` must either finish with the same metrics.csv and final weights as an uninterrupted
run, or refuse in one line (exit 2) without touching anything: never exit 0 with epochs missing.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, read_json, read_metrics, start, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.model.build import load_model
from dnnlab.rundir.records import TrainState
from dnnlab.training import session

SPEC = {
    "name": "faults",
    "seed": 11,
    "data": {
        "dataset": {"type": "synthetic", "shape": [8], "classes": 3, "train": 240, "test": 30},
        "validation": 60,
    },
    "model": {"hidden": [8]},
    "training": {"epochs": 4, "batch_size": 16},  # 180 rows after validation: 12 steps an epoch
}
COMMITTED = 3  # epochs committed before the interruption

runner = CliRunner()


# --- helpers -------------------------------------------------------------------------------


def resume_cli(run_dir: Path):
    return runner.invoke(app, ["train", "--resume", str(run_dir)])


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def weights(path: Path) -> list[np.ndarray]:
    return load_model(path, compile=False).get_weights()


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    """Every metrics.csv column but `seconds` identical, and identical final weights."""

    def rows(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(run)]

    assert rows(resumed) == rows(uninterrupted)
    for a, b in zip(weights(resumed / "model.keras"), weights(uninterrupted / "model.keras"), strict=True):
        assert np.array_equal(a, b)
    assert read_json(resumed / "run.json")["status"] == "completed"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's (size, mtime in ns) below `folder`: equal snapshots mean nothing was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"), SPEC)


@pytest.fixture(scope="module")
def uninterrupted(spec_path, tmp_path_factory) -> Path:
    result = start(spec_path, tmp_path_factory.mktemp("uninterrupted"))
    assert result.status == "completed"
    return result.run_dir


def interrupted_run(spec_path: Path, runs_dir: Path, overrides=()) -> Path:
    """A run stopped (Ctrl-C) right after committing epoch COMMITTED of 4."""
    record = session.Session.record_epoch

    def record_then_interrupt(self, epoch, *args, **kwargs):
        record(self, epoch, *args, **kwargs)
        if epoch + 1 == COMMITTED:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session.Session, "record_epoch", record_then_interrupt)
        result = start(spec_path, runs_dir, overrides)
    assert result.status == "interrupted"
    return result.run_dir


@pytest.fixture(scope="module")
def interrupted_once(spec_path, tmp_path_factory) -> Path:
    """The interrupted run; tests damage a copy of it."""
    return interrupted_run(spec_path, tmp_path_factory.mktemp("interrupted"))


@pytest.fixture
def interrupted(interrupted_once, tmp_path) -> Path:
    """A fresh copy of the interrupted run, for a test to damage."""
    copy = tmp_path / interrupted_once.name
    shutil.copytree(interrupted_once, copy, symlinks=True)
    return copy


# --- independent checkpoint files ----------------------------------------------------------


def test_checkpoints_are_independent_files_and_the_two_latest_epochs_are_kept(uninterrupted):
    checkpoints = uninterrupted / "checkpoints"
    names = sorted(p.name for p in checkpoints.glob("epoch-*.keras"))
    assert names == ["epoch-00003.keras", "epoch-00004.keras"]
    files = [checkpoints / n for n in ("last.keras", "best.keras", "epoch-00004.keras", "epoch-00003.keras")]
    assert len({p.stat().st_ino for p in files}) == len(files)
    assert all(p.stat().st_nlink == 1 for p in files)
    assert (checkpoints / "last.keras").read_bytes() == (checkpoints / "epoch-00004.keras").read_bytes()


def test_state_json_records_the_metrics_and_the_commit_before(uninterrupted):
    state = read_json(uninterrupted / "state.json")
    assert state["metrics_rows"] == 4
    assert len(state["metrics_sha256"]) == 64
    assert state["previous"]["epochs_done"] == 3
    assert state["previous"]["checkpoint"] == "epoch-00003.keras"
    assert "previous" not in state["previous"]


# --- damaged checkpoints -------------------------------------------------------------------


def test_truncated_last_keras_resumes_exactly(interrupted, uninterrupted):
    truncate(interrupted / "checkpoints" / "last.keras")
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    assert_same_run(interrupted, uninterrupted)


def test_last_keras_replaced_by_another_runs_model_resumes_exactly(interrupted, uninterrupted):
    shutil.copyfile(uninterrupted / "model.keras", interrupted / "checkpoints" / "last.keras")
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    assert_same_run(interrupted, uninterrupted)


def test_truncated_latest_checkpoint_falls_back_one_epoch(interrupted, uninterrupted):
    for name in ("epoch-00003.keras", "last.keras"):
        truncate(interrupted / "checkpoints" / name)
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    warning = [line for line in stderr_lines(result) if "trained again" in line]
    assert len(warning) == 1 and "epoch-00003.keras" in warning[0], result.stderr
    assert_same_run(interrupted, uninterrupted)  # epoch 3's row replaced, not duplicated


def test_checkpoint_of_another_run_is_caught_by_its_step_count(interrupted, uninterrupted):
    """The same architecture, loadable, but 4 epochs of steps where state.json says 3."""
    shutil.copyfile(uninterrupted / "model.keras", interrupted / "checkpoints" / "epoch-00003.keras")
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    assert "optimizer has taken 48 steps, but 3 epochs make 36" in result.stderr
    assert_same_run(interrupted, uninterrupted)


def test_no_loadable_checkpoint_is_one_line_and_touches_nothing(interrupted):
    for name in ("epoch-00003.keras", "epoch-00002.keras"):
        truncate(interrupted / "checkpoints" / name)
    before = snapshot(interrupted)
    assert_one_line_error(resume_cli(interrupted), "cannot resume", "epoch-00003.keras", "epoch-00002.keras")
    assert snapshot(interrupted) == before


@pytest.fixture(scope="module")
def transfer_runs(spec_path, uninterrupted, tmp_path_factory) -> tuple[Path, Path]:
    """A transfer run from `uninterrupted`, unfrozen after 2 epochs: finished, and interrupted."""
    transfer = [f"model.transfer={{run: {uninterrupted}, freeze_epochs: 2}}"]
    reference = start(spec_path, tmp_path_factory.mktemp("transfer"), transfer)
    assert reference.status == "completed"
    return reference.run_dir, interrupted_run(spec_path, tmp_path_factory.mktemp("transfer-cut"), transfer)


@pytest.mark.parametrize("damage", ["none", "latest checkpoint truncated"])
def test_transfer_run_resumes_across_its_recompiled_optimizer(transfer_runs, tmp_path, damage):
    """Unfrozen after 2 epochs, its optimizer counts steps from 0 again: after 3 epochs the
    checkpoint has taken 1 epoch of steps, the one before (still frozen) 2."""
    reference, interrupted_once = transfer_runs
    run_dir = tmp_path / interrupted_once.name
    shutil.copytree(interrupted_once, run_dir)
    assert read_json(run_dir / "state.json")["transfer"]["unfrozen"]
    if damage != "none":
        truncate(run_dir / "checkpoints" / "epoch-00003.keras")
    result = resume_cli(run_dir)
    assert result.exit_code == 0, result.output
    assert ("trained again" in result.stderr) == (damage != "none")
    assert_same_run(run_dir, reference)


@pytest.fixture(scope="module")
def interrupted_restoring(spec_path, tmp_path_factory) -> Path:
    """The interrupted run with early stopping that restores its best weights."""
    stopping = ["training.early_stopping={patience: 10, restore_best_weights: true}"]
    return interrupted_run(spec_path, tmp_path_factory.mktemp("restoring"), stopping)


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_damaged_early_stopping_best_weights_are_one_line(interrupted_restoring, tmp_path, damage):
    """Without them the run would silently finish with the last weights instead of the best."""
    run_dir = tmp_path / interrupted_restoring.name
    shutil.copytree(interrupted_restoring, run_dir)
    best = run_dir / "checkpoints" / "early_stopping_best.keras"
    if damage == "deleted":
        best.unlink()
    else:
        truncate(best)
    assert_one_line_error(resume_cli(run_dir), "early_stopping_best.keras")


# --- damaged metrics.csv and state.json ----------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "header only"])
def test_missing_epochs_in_metrics_csv_are_refused(interrupted, damage):
    metrics = interrupted / "metrics.csv"
    if damage == "deleted":
        metrics.unlink()
    else:
        metrics.write_text(metrics.read_text().splitlines()[0] + "\n")
    result = resume_cli(interrupted)
    assert_one_line_error(result, "cannot resume", "metrics.csv")
    assert read_json(interrupted / "state.json")["epochs_done"] == COMMITTED


def test_a_cut_last_row_is_rebuilt_by_training_its_epoch_again(interrupted, uninterrupted):
    metrics = interrupted / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-12])  # the last row loses its end
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    assert "trained again" in result.stderr
    assert_same_run(interrupted, uninterrupted)


def test_edited_epochs_done_is_refused(interrupted):
    state_file = interrupted / "state.json"
    state = read_json(state_file)
    state["epochs_done"] = 1
    state_file.write_text(json.dumps(state))
    before = snapshot(interrupted)
    assert_one_line_error(resume_cli(interrupted), "state.json", "epochs_done 1")
    assert snapshot(interrupted) == before


def test_state_json_without_the_new_fields_still_resumes(interrupted, uninterrupted):
    """state.json as dnnlab wrote it before it recorded metrics.csv and the previous commit."""
    state_file = interrupted / "state.json"
    state = read_json(state_file)
    for key in ("metrics_rows", "metrics_sha256", "previous"):
        del state[key]
    state["version"] = 2
    state_file.write_text(json.dumps(state))
    result = resume_cli(interrupted)
    assert result.exit_code == 0, result.output
    assert_same_run(interrupted, uninterrupted)


def test_damaged_new_state_fields_read_as_absent():
    """Tolerant, as every record field: such a state.json resumes with the older version's checks."""
    damaged = {"metrics_rows": "x", "metrics_sha256": 5, "previous": []}
    state = TrainState.from_dict({"epochs_done": 2, "checkpoint": "epoch-00002.keras", **damaged})
    assert (state.metrics_rows, state.metrics_sha256, state.previous) == (None, None, None)
    assert "previous" not in state.to_dict()


# --- stale temporaries and symbolic links --------------------------------------------------


def test_stale_temporaries_are_removed_on_resume(interrupted):
    checkpoints = interrupted / "checkpoints"
    stale = [
        interrupted / ".metrics.csv.k3j_9x2a.tmp",
        checkpoints / ".epoch-00004.keras.ab12cd34.tmp.keras",
        checkpoints / ".last.keras.0123456789abcdef.link",
    ]
    kept = [interrupted / "notes.tmp", interrupted / ".notes.tmp"]  # not names dnnlab makes
    for path in stale + kept:
        path.write_text("x")
    assert resume_cli(interrupted).exit_code == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


@pytest.mark.parametrize("folder", ["checkpoints", "tensorboard"])
def test_a_symlinked_run_folder_is_refused_and_its_target_untouched(interrupted, tmp_path, folder):
    target = tmp_path / "elsewhere"
    shutil.move(interrupted / folder, target)
    (interrupted / folder).symlink_to(target)
    before = snapshot(target)
    assert_one_line_error(resume_cli(interrupted), folder, "symbolic link")
    assert snapshot(target) == before


@pytest.fixture
def first_temporary_name(monkeypatch):
    """Make mkstemp try the name 'planted0' first, as an attacker who guessed it would hope."""
    real = tempfile._get_candidate_names

    def names():
        return itertools.chain(["planted0"], real())

    monkeypatch.setattr(tempfile, "_get_candidate_names", names)
    return "planted0"


def test_a_symlink_at_the_temporary_name_is_not_followed(tmp_path, first_temporary_name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out" / "o.npz"
    out.parent.mkdir()
    planted = out.parent / f".o.npz.{first_temporary_name}.tmp"
    planted.symlink_to(victim)
    atomic_write_bytes(out, b"results")
    assert out.read_bytes() == b"results" and not out.is_symlink()
    assert victim.read_text() == "precious"
    assert planted.is_symlink()  # left alone, not written through


def test_predict_out_does_not_follow_a_planted_symlink(uninterrupted, tmp_path, first_temporary_name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    x = tmp_path / "x.npz"
    np.savez(x, x=np.zeros((5, 8), dtype=np.float32))
    out = tmp_path / "o.npz"
    (tmp_path / f".o.npz.{first_temporary_name}.tmp").symlink_to(victim)
    result = runner.invoke(app, ["predict", str(uninterrupted), "--data", str(x), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious" and os.stat(victim).st_size == len("precious")
    assert len(np.load(out)["predicted"]) == 5


# --- damaged model files outside resume ----------------------------------------------------


def test_evaluate_on_a_damaged_model_file_is_one_line(uninterrupted, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(uninterrupted, run)
    truncate(run / "model.keras")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert_one_line_error(result, "model.keras", "cannot load")
