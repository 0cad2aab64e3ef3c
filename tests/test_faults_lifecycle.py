"""Faults at any instant of `dnnlab train`: kills, signals and refused writes (docs/faults.md).

A kill (SIGKILL) needs a process of its own: tests/fault_injection.py runs the real command line
with the kill placed at a chosen atomic write, so the instant is exact rather than timed. SIGTERM
and refused writes run in this process through Typer's runner with the same injector. Every
stopped run is then resumed with no --epochs and must equal an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fault_injection import faulty_writer, read_only_in_place
from helpers import read_json, read_metrics, start, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.files import atomic
from dnnlab.model.build import load_model
from dnnlab.rundir import directory
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.discovery import latest_completed
from dnnlab.rundir.records import RunRecord

EPOCHS = 3
TINY = {
    "name": "tiny",
    "seed": 7,
    "data": {
        "dataset": {"type": "synthetic", "shape": [20], "classes": 4, "train": 600, "test": 50},
        "validation": 100,
    },
    "model": {"hidden": [16], "dropout": {"rate": 0.2, "where": "hidden"}},
    "training": {"epochs": EPOCHS, "batch_size": 16},
}
# run.json is written when the run is created, when its setup records the loss at initialization,
# when the setup is committed, at each epoch's end and by the finalisation: the last of these is
# write number 3 + EPOCHS + 1.
FINAL_RUN_JSON = 3 + EPOCHS + 1
INJECTOR = str(Path(__file__).with_name("fault_injection.py"))
runner = CliRunner()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("specs"), TINY)


@pytest.fixture(scope="module")
def uninterrupted(spec, tmp_path_factory) -> Path:
    return start(spec, tmp_path_factory.mktemp("reference")).run_dir


def inject_in_subprocess(action: str, where: str, nth: int, *args) -> subprocess.CompletedProcess:
    """`dnnlab train ARGS` in a new process with the fault of fault_injection.py."""
    command = [sys.executable, INJECTOR, action, where, str(nth), "train", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def invoke(*args):
    return runner.invoke(app, ["train", *map(str, args)])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def visible(folder: Path) -> list[Path]:
    """What a user sees in the runs folder (a run being staged is a hidden folder)."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


def the_run(folder: Path) -> Path:
    (run_dir,) = visible(folder)
    return run_dir


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Completed, model.keras present, the same metrics (all but `seconds`) and final weights."""
    record = read_json(resumed / "run.json")
    assert record["status"] == "completed", record
    assert record["epochs_done"] == EPOCHS
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(read_metrics(resumed)) == drop(read_metrics(reference))
    for a, b in zip(
        load_model(resumed / "model.keras").get_weights(),
        load_model(reference / "model.keras").get_weights(),
        strict=True,
    ):
        assert np.array_equal(a, b)
    assert not [p.name for p in resumed.rglob(".*") if p.name != ".lock"], "temporary files left"
    assert not (resumed / ".lock").exists()


def resume_cli(run_dir: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert result.exit_code == 0, result.output


# --- SIGKILL at chosen instants -------------------------------------------------------------


def test_a_kill_before_run_json_leaves_no_run_directory(spec, tmp_path):
    """The directory appears only with its run.json in it (a staged folder renamed into place)."""
    done = inject_in_subprocess("kill", "run.json", 1, spec, "--runs-dir", tmp_path)
    assert done.returncode == -9, done.stderr
    assert visible(tmp_path) == []
    assert runner.invoke(app, ["compare", str(tmp_path)]).exit_code == 2  # no run to show


def test_a_run_killed_during_its_setup_is_set_up_again_by_resume(spec, tmp_path, uninterrupted):
    """Killed before state.json commits the setup: status `starting`; --resume redoes the setup
    from config.yaml and trains the run as if nothing had happened."""
    done = inject_in_subprocess("kill", "state.json", 1, spec, "--runs-dir", tmp_path)
    assert done.returncode == -9, done.stderr
    run_dir = the_run(tmp_path)
    assert read_json(run_dir / "run.json")["status"] == "starting"
    assert not (run_dir / "state.json").exists()
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.parametrize("where, nth", [("model.keras", 1), ("run.json", FINAL_RUN_JSON)])
def test_a_run_killed_while_finishing_is_finished_by_resume(spec, tmp_path, uninterrupted, where, nth):
    """Killed while saving model.keras or writing the final status: every epoch is committed,
    and --resume with no --epochs trains nothing and finishes it."""
    done = inject_in_subprocess("kill", where, nth, spec, "--runs-dir", tmp_path, "-q")
    assert done.returncode == -9, done.stderr
    run_dir = the_run(tmp_path)
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["epochs_done"]) == ("running", EPOCHS)
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_while_importing_tensorflow_exits_130_and_leaves_nothing(spec, tmp_path):
    """The handler is in place before the seconds of imports, data loading and model building."""
    runs_dir = tmp_path / "runs"
    done = inject_in_subprocess("term", "import:tensorflow", 1, spec, "--runs-dir", runs_dir)
    assert done.returncode == 130, done.stderr
    assert lines(done.stderr) == ["interrupted: before the run started; nothing was written"]
    assert done.stdout == ""
    assert visible(runs_dir) == []


def test_an_interrupt_while_config_yaml_is_written_leaves_no_run(spec, tmp_path, monkeypatch):
    """config.yaml is written in the staging folder with run.json: an interrupt there leaves no
    run directory and no temporary file, rather than a run that `--resume` cannot set up."""
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("term", "config.yaml"))
    result = invoke(spec, "--runs-dir", tmp_path, "-q")
    assert result.exit_code == 130, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["summary.txt", "model.keras"])
def test_sigterm_during_setup_or_finalisation_is_interrupted_and_resumable(
    spec, tmp_path, uninterrupted, monkeypatch, where
):
    """SIGTERM while the run is set up or finished: exit 130, status `interrupted`, and --resume
    with no --epochs completes it exactly."""
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("term", where))
    result = invoke(spec, "--runs-dir", tmp_path, "-q")
    assert result.exit_code == 130, result.output
    run_dir = the_run(tmp_path)
    assert read_json(run_dir / "run.json")["status"] == "interrupted"
    monkeypatch.undo()
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


def test_sigterm_during_a_resume_is_interrupted_too(spec, tmp_path, uninterrupted, monkeypatch):
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("term", "epoch-00002.keras"))
    assert invoke(spec, "--runs-dir", tmp_path, "-q").exit_code == 130
    run_dir = the_run(tmp_path)
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("term", "model.keras"))
    result = invoke("--resume", run_dir, "-q")
    assert result.exit_code == 130, result.output
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["epochs_done"]) == ("interrupted", EPOCHS)
    monkeypatch.undo()
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


# --- refused writes ---------------------------------------------------------------------------


def test_a_full_disk_is_one_line_the_run_failed_and_resume_completes(
    spec, tmp_path, uninterrupted, monkeypatch
):
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("enospc", "epoch-00002.keras"))
    result = invoke(spec, "--runs-dir", tmp_path, "-q")
    run_dir = the_run(tmp_path)
    assert result.exit_code == 1, result.output
    (line,) = lines(result.stderr)
    assert str(run_dir / "checkpoints" / "epoch-00002.keras") in line
    assert "No space left on device" in line and "run marked failed" in line, line
    assert f"dnnlab train --resume {run_dir}" in line
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["epochs_done"]) == ("failed", 1)
    assert not list(run_dir.rglob(".*.tmp*")), "the failed write's temporary file is left"
    monkeypatch.undo()  # space freed
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=1024k tmpfs "$DISK" || exit 99
dd if=/dev/zero of="$DISK/filler" bs=1k count=944 2>/dev/null  # 80 KiB left: not enough for a run
"$PY" -m dnnlab train "$SPEC" --runs-dir "$DISK/runs" -q 2> "$OUT/stderr"
echo $? > "$OUT/rc"
cp "$DISK"/runs/*/run.json "$OUT/failed.json"
rm "$DISK/filler"
"$PY" -m dnnlab train --resume "$DISK"/runs/* -q > /dev/null 2>&1
cp -r "$DISK"/runs/* "$OUT/run"
"""


@pytest.mark.slow  # two processes that import TensorFlow
def test_a_real_full_disk_fails_in_one_line_and_resume_completes_once_freed(spec, tmp_path, uninterrupted):
    """A tmpfs of 1 MiB filled but for 80 KiB (in a user and mount namespace of its own)."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**os.environ, "DISK": str(disk), "OUT": str(out), "PY": sys.executable, "SPEC": str(spec)}
    command = ["unshare", "-rm", "sh", "-c", FULL_DISK_SCRIPT]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode == 99 or "unshare" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert (out / "rc").read_text().strip() == "1", (out / "stderr").read_text()
    (line,) = lines((out / "stderr").read_text())
    assert "cannot write (No space left on device); run marked failed" in line, line
    assert read_json(out / "failed.json")["status"] == "failed"
    assert_same_run(out / "run", uninterrupted)


def test_a_read_only_disk_says_the_status_could_not_be_recorded(spec, tmp_path, uninterrupted, monkeypatch):
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("erofs", "epoch-00002.keras"))
    monkeypatch.setattr(directory, "overwrite_in_place", read_only_in_place)
    result = invoke(spec, "--runs-dir", tmp_path, "-q")
    run_dir = the_run(tmp_path)
    assert result.exit_code == 1, result.output
    (line,) = lines(result.stderr)
    assert "Read-only file system" in line and "could not mark the run failed either" in line, line
    assert read_json(run_dir / "run.json")["status"] == "running"  # the last status it could write
    monkeypatch.undo()
    resume_cli(run_dir)
    assert_same_run(run_dir, uninterrupted)


def test_a_read_only_runs_dir_is_refused_before_anything(spec, tmp_path, monkeypatch):
    """As root, permissions do not stop writes; a probe that the file system refuses stands in
    for a read-only mount."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == runs_dir:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    result = invoke(spec, "--runs-dir", runs_dir)
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert f"--runs-dir: cannot create run directories in {runs_dir} (Read-only file system)" in line, line
    assert list(runs_dir.iterdir()) == []


def test_run_json_rewritten_in_place_keeps_its_file_and_reads_back(tmp_path):
    """The full disk's last resort: the same file (inode) rewritten, padded, still valid JSON."""
    run = RunDir(tmp_path)
    run.write_record(RunRecord(name="x", status="running", command=["dnnlab", "train", "a-long-argument"]))
    before = os.stat(run.run_json)
    record = run.update_record_in_place(status="failed", command=["dnnlab"])
    after = os.stat(run.run_json)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert run.read_record() == record and record.status == "failed"


def test_predict_out_on_a_full_disk_is_one_line_and_no_file(uninterrupted, tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(5, 20)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "out.csv"
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("enospc", "out.csv"))
    result = runner.invoke(
        app, ["predict", str(uninterrupted), "--data", str(tmp_path / "x.npz"), "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert lines(result.stderr) == [f"error: {out}: cannot write (No space left on device)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


# --- the `starting` status --------------------------------------------------------------------


def starting_run(folder: Path, uninterrupted: Path, with_config: bool) -> Path:
    """A run directory as a kill leaves it just after its run.json (and maybe config.yaml)."""
    run_dir = folder / "tiny-20260101-000000"
    (run_dir / "checkpoints").mkdir(parents=True)
    record = {**read_json(uninterrupted / "run.json"), "status": "starting", "epochs_done": 0}
    record.update(finished=None, best={"metric": "val_loss", "mode": "min", "value": None, "epoch": None})
    record.pop("test")
    (run_dir / "run.json").write_text(json.dumps(record))
    if with_config:
        (run_dir / "config.yaml").write_bytes((uninterrupted / "config.yaml").read_bytes())
    return run_dir


def test_resume_of_a_run_stopped_before_its_config_is_one_line(uninterrupted, tmp_path):
    run_dir = starting_run(tmp_path, uninterrupted, with_config=False)
    result = invoke("--resume", run_dir)
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert "before its config.yaml was written" in line and "dnnlab train SPEC" in line, line


def test_starting_runs_are_shown_by_compare_and_skipped_by_latest_completed(uninterrupted, tmp_path):
    run_dir = starting_run(tmp_path, uninterrupted, with_config=True)
    assert latest_completed(tmp_path) is None
    result = runner.invoke(app, ["compare", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["runs"]
    assert row["status"] == "starting" and row["run"].endswith(run_dir.name)


def test_an_interrupted_start_in_process_leaves_nothing(spec, tmp_path, monkeypatch):
    """train.start (as sweeps call it): an interrupt before the directory exists propagates and
    leaves nothing, even one arriving while the directory is being staged."""
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("term", "run.json"))
    with pytest.raises(KeyboardInterrupt):
        start(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_trial_refused_a_write_is_failed_and_resumed_later(spec, tmp_path, monkeypatch):
    """A trial stopped by a full disk is recorded failed with the one line as its error, and is
    not final: once the disk can be written, running it again continues the run to completion."""
    from dnnlab.sweep.definition import build_sweep
    from dnnlab.sweep.record import SweepDir, new_record
    from dnnlab.sweep.trials import expand_and_check, refused_write
    from dnnlab.sweep.worker import run_trial

    sweep = build_sweep(spec, axes=["training.optimizer.learning_rate=0.001"])
    expansion = expand_and_check(sweep)
    folder = SweepDir.create(tmp_path, sweep.name)
    folder.write_definition(sweep)
    folder.write_record(new_record(sweep, expansion.trials, expansion.varying, ["test"]))
    (trial,) = [t.to_dict() for t in expansion.trials]
    monkeypatch.setattr(atomic, "_replace_with", faulty_writer("enospc", "epoch-00002.keras"))
    outcome = run_trial(folder.path, trial)
    assert outcome["status"] == "failed" and refused_write(outcome["error"]), outcome
    assert "No space left on device" in outcome["error"]
    assert read_json(folder.path / trial["run"] / "run.json")["status"] == "failed"
    monkeypatch.undo()
    outcome = run_trial(folder.path, {**trial, "status": "failed", "error": outcome["error"]})
    assert (outcome["status"], outcome["epochs_done"]) == ("completed", EPOCHS), outcome


def test_resume_on_a_read_only_file_system_is_one_line(uninterrupted, tmp_path, monkeypatch):
    """The lock file is the first thing a resume writes: a read-only disk refuses it in one line,
    exit 1, and nothing of the run changes."""
    import shutil

    from dnnlab.rundir import lock

    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    real_open = os.open

    def read_only_open(path, flags, *args):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lock.os, "open", read_only_open)
    result = invoke("--resume", copy, "--epochs", EPOCHS + 1)
    assert result.exit_code == 1, result.output
    assert lines(result.stderr) == [
        f"error: {copy / '.lock'}: cannot create the lock file (Read-only file system); dnnlab works on a "
        "run in place, so its folder must be writable: copy the run to a writable folder"
    ]
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_a_state_json_without_its_execution_record_is_one_line(uninterrupted, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    state = read_json(copy / "state.json")
    del state["execution"]
    (copy / "state.json").write_text(json.dumps(state))
    result = invoke("--resume", copy, "--epochs", EPOCHS + 1)
    assert result.exit_code == 2, result.output
    (line,) = lines(result.stderr)
    assert "state.json: its `execution` record is missing or damaged" in line, line
