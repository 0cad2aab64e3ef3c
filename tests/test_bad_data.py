"""Hostile data and run directories: one error line, exit 2, nothing left behind, nothing echoed.

Every family of bad input a user (or a downloaded file) can bring goes through the command line:
NaN and infinity, labels the output cannot hold, one class, empty or non-numeric arrays, an .npz
header that claims more rows than its file holds, FIFOs and devices, secrets in the first line,
unusable run folders and names. compare and report get one hostile run beside a good one, in a
subprocess with a timeout, since a regression here would hang rather than fail.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_one_line_error as one_line_error
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.rundir.discovery import latest_completed

SECRET = "SECRET_TOKEN=hunter2"
ROWS = 40


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> str:
    """The one `error:` line of bad input (helpers), and no secret of the file in the output."""
    assert "hunter2" not in result.stdout + result.stderr
    return one_line_error(result, *fragments)


def arrays(**changes) -> dict[str, np.ndarray]:
    """x_train (40 rows, 3 features) and labels of three classes, with `changes` applied."""
    rng = np.random.default_rng(0)
    found = {
        "x_train": rng.standard_normal((ROWS, 3)).astype(np.float32),
        "y_train": np.arange(ROWS) % 3,
    }
    found.update(changes)
    return found


def npy(array: np.ndarray, header_shape: tuple[int, ...] | None = None) -> bytes:
    """An .npy member; `header_shape` makes its header lie about the shape."""
    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if header_shape is not None:
        header["shape"] = header_shape
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(array.tobytes())
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(f"{name}.npy", payload)
    return path


def spec_file(folder: Path, dataset: dict, **model) -> Path:
    spec = {
        "name": "bad",
        "data": {"dataset": dataset, "validation": 0.2},
        "model": {"hidden": [4], **model},
        "training": {"epochs": 1, "batch_size": 8},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def npz_dataset(tmp_path: Path, **changes) -> dict:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays(**changes))
    return {"type": "npz", "path": str(path)}


def csv_dataset(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return {"type": "csv", "path": str(path), "target": "y"}


def csv_text(cell: str = "", at: int = -1, column: int = 1) -> str:
    """a,b,y with 20 rows of two classes; the cell of data row `at` and `column` replaced."""
    rows = [[str(i), str(i % 5), str(i % 2)] for i in range(20)]
    if at >= 0:
        rows[at][column] = cell
    return "a,b,y\n" + "".join(",".join(r) + "\n" for r in rows)


def train_fails(tmp_path: Path, spec: Path, *fragments: str, args=()) -> str:
    runs = tmp_path / "runs"
    line = assert_one_line_error(invoke("train", spec, "--runs-dir", runs, *args), *fragments)
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    return line


# --- data values ---------------------------------------------------------------------------

NAN_X = arrays()["x_train"].copy()
NAN_X[5, 1] = np.nan


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"x_train": NAN_X}, ["data.dataset.path", "x_train[5]", "NaN or infinite"]),
        ({"y_train": np.where(np.arange(ROWS) == 3, np.inf, np.arange(ROWS) % 3)}, ["y_train[3]", "finite"]),
        ({"y_train": np.arange(ROWS) % 3 - 1}, ["data.task", "the label -1"]),
        ({"y_train": np.zeros(ROWS, dtype=int)}, ["data.task", "at least two classes"]),
        ({"x_train": np.zeros((0, 3)), "y_train": np.zeros(0, dtype=int)}, ["x_train has no rows"]),
        ({"x_train": np.array([["a", "b", "c"]] * ROWS)}, ["x_train has dtype <U1", "expected numbers"]),
    ],
    ids=["nan feature", "inf label", "negative label", "one class", "no rows", "strings"],
)
def test_bad_npz_values_fail_in_one_line_before_a_run_exists(tmp_path, changes, fragments):
    train_fails(tmp_path, spec_file(tmp_path, npz_dataset(tmp_path, **changes)), *fragments)


def test_a_sweep_reads_the_values_once_before_any_trial(tmp_path):
    spec = spec_file(tmp_path, npz_dataset(tmp_path, x_train=NAN_X))
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "-g", "model.hidden=[4],[5]", "--runs-dir", runs, "--jobs", "1")
    assert_one_line_error(result, "x_train[5]", "NaN or infinite")
    assert not any(runs.iterdir())


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (csv_text("nan", at=3), ["data.csv line 5, column 2", "NaN or infinite"]),
        (csv_text("inf", at=0, column=2), ["data.csv line 2, column 3", "NaN or infinite"]),
        (csv_text("hunter2", at=6), ["data.csv line 8, column 2 is not a number"]),
    ],
    ids=["nan feature", "inf target", "text feature"],
)
def test_bad_csv_values_name_line_and_column_not_the_cell(tmp_path, text, fragments):
    train_fails(tmp_path, spec_file(tmp_path, csv_dataset(tmp_path, text)), *fragments)


def test_labels_beyond_the_output_units_are_refused(tmp_path):
    spec = spec_file(tmp_path, npz_dataset(tmp_path), output={"units": 2})
    train_fails(tmp_path, spec, "model.output.units", "labels 0..2 (3 classes)")


def test_object_dtype_is_refused_without_unpickling(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([1, "a", None] * 14, dtype=object)[:ROWS], allow_pickle=True)
    path = write_npz(
        tmp_path / "data.npz", {"x_train": npy(arrays()["x_train"]), "y_train": buffer.getvalue()}
    )
    spec = spec_file(tmp_path, {"type": "npz", "path": str(path)})
    train_fails(tmp_path, spec, "y_train has dtype |O")


def test_a_header_claiming_more_rows_than_the_file_holds_is_refused_before_reading(tmp_path):
    x = arrays()["x_train"]
    path = write_npz(
        tmp_path / "data.npz",
        {"x_train": npy(x, header_shape=(10**13, 3)), "y_train": npy(arrays()["y_train"])},
    )
    spec = spec_file(tmp_path, {"type": "npz", "path": str(path)})
    train_fails(tmp_path, spec, "x_train's header claims shape (10000000000000, 3)", "the file is damaged")


def test_a_tampered_keras_cache_is_checked_like_any_npz(tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(cache.parent))
    images, labels = np.zeros((4, 28, 28), np.uint8), np.arange(4) % 2
    lying = npy(images, header_shape=(10**13, 28, 28))
    members = {"x_train": lying, "y_train": npy(labels), "x_test": npy(images), "y_test": npy(labels)}
    write_npz(cache / "mnist.npz", members)
    train_fails(tmp_path, spec_file(tmp_path, "mnist"), "data.dataset", "x_train's header claims shape")


@pytest.mark.parametrize("members", [{}, {"x_train": SECRET.encode()}], ids=["empty", "not npy"])
def test_npz_without_usable_arrays(tmp_path, members):
    path = write_npz(tmp_path / "data.npz", members)
    train_fails(tmp_path, spec_file(tmp_path, {"type": "npz", "path": str(path)}), "data.dataset.path")


# --- what a data path may name -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_a_secret_file_is_never_echoed(tmp_path, kind):
    secret = tmp_path / f"secret.{kind}"
    secret.write_text(f"{SECRET}\nmore,secrets\n")
    dataset = {"type": kind, "path": str(secret), **({"target": "y"} if kind == "csv" else {})}
    train_fails(tmp_path, spec_file(tmp_path, dataset), str(secret))


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """dnnlab in a subprocess, so that a hang is a timeout failure instead of a stuck suite."""
    return subprocess.run(
        [sys.executable, "-m", "dnnlab", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "folder"])
def test_fifos_devices_and_folders_are_refused_without_blocking(tmp_path, target):
    path = tmp_path / "data.npz"
    if target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    else:
        path = Path(target)
    spec = spec_file(tmp_path, {"type": "npz", "path": str(path)})
    done = run_cli("check", str(spec), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and ("not a regular file" in lines[0] or "is a directory" in lines[0]), lines


# --- where runs go -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--runs-dir", "/proc"], "--runs-dir: cannot create run directories in /proc"),
        (["--runs-dir", "FILE"], "is a file, expected a folder"),
        (["--name", "a/b"], "--name: 'a/b' cannot name a run"),
        (["--name", "n" * 300], "expected 1 to 100 letters"),
    ],
    ids=["proc", "file", "slash", "300 characters"],
)
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_unusable_run_folders_and_names_fail_before_the_data_is_loaded(tmp_path, command, args, fragment):
    (tmp_path / "FILE").write_text("")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    spec = spec_file(tmp_path, npz_dataset(tmp_path, x_train=NAN_X))  # loading it would fail
    runs = ["--runs-dir", tmp_path / "runs"] if "--runs-dir" not in args else []
    assert_one_line_error(invoke(command, spec, *runs, *args), fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- data given to a trained run -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    spec = spec_file(folder, npz_dataset(folder))
    result = invoke("train", spec, "--runs-dir", folder / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ({"x": NAN_X}, ["--data", "x[5]", "NaN or infinite"]),
        ({"x": NAN_X[:0]}, ["x has no rows"]),
        ({"x": arrays()["x_train"], "y": np.full(ROWS, 7)}, ["40 label(s), the first in row 0"]),
        ({"x": np.ones((4, 5), np.float32)}, ["examples of shape (5,); the model expects (3,)"]),
    ],
    ids=["nan", "no rows", "unknown labels", "feature count"],
)
@pytest.mark.parametrize("command", ["evaluate", "predict", "mc-predict"])
def test_data_files_given_to_a_run_are_checked(tmp_path, trained, command, content, fragments):
    path = tmp_path / "examples.npz"
    np.savez(path, **content)
    extra = ["--samples", "2", "--quiet"] if command == "mc-predict" else []
    assert_one_line_error(invoke(command, trained, "--data", path, *extra), *fragments)


def test_a_secret_given_as_examples_is_not_echoed(tmp_path, trained):
    path = tmp_path / "examples.csv"
    path.write_text(f"{SECRET},b,c\n1,2,hunter2\n")
    assert_one_line_error(invoke("predict", trained, "--data", path), "examples.csv line 2, column 3")


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "RUNS", "--plot", "/proc/curves.png"],
        ["report", "RUNS", "--out", "/proc/report.html"],
        ["predict", "RUN", "--data", "EXAMPLES", "--out", "/proc/predictions.csv"],
        ["mc-predict", "RUN", "--data", "EXAMPLES", "--out", "/proc/mc.npz"],
        ["export", "RUN", "--format", "savedmodel", "--out", "/proc/model"],
    ],
    ids=lambda args: args[0],
)
def test_output_files_where_nothing_can_be_written_fail_first(tmp_path, trained, args):
    examples = tmp_path / "examples.npz"
    np.savez(examples, x=arrays()["x_train"])
    places = {"RUNS": trained.parent, "RUN": trained, "EXAMPLES": examples}
    assert_one_line_error(invoke(*(places.get(a, a) for a in args)), "cannot write in /proc")


# --- untrusted run directories -------------------------------------------------------------


def write_run(folder: Path, val_loss: list[float], finished: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": folder.name, "seed": 0}))
    rows = "".join(f"{epoch},{v + 0.1},{v}\n" for epoch, v in enumerate(val_loss))
    (folder / "metrics.csv").write_text("epoch,loss,val_loss\n" + rows)
    record = {
        "name": folder.name,
        "status": "completed",
        "finished": finished,
        "epochs_done": len(val_loss),
        "best": {"metric": "val_loss", "mode": "min", "value": min(val_loss), "epoch": 0},
    }
    (folder / "run.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def hostile_runs(tmp_path) -> Path:
    """runs/: one good run, one whose run.json nests 100,000 deep and whose metrics.csv has a
    million columns (and is newer), one whose metrics.csv is a FIFO and one far too large."""
    root = tmp_path / "runs"
    write_run(root / "good", [0.5, 0.4], "2025-01-01T00:00:00")
    deep = write_run(root / "deep", [0.1], "2030-01-01T00:00:00")
    (deep / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    (deep / "metrics.csv").write_text(",".join(f"m{i}" for i in range(10**6)) + "\n" + "1," * 999_999 + "1\n")
    fifo = write_run(root / "fifo", [0.2], "2024-01-01T00:00:00")
    (fifo / "metrics.csv").unlink()
    os.mkfifo(fifo / "metrics.csv")
    huge = write_run(root / "huge", [0.3], "2024-01-01T00:00:00")
    with open(huge / "metrics.csv", "ab") as handle:
        handle.truncate(64 << 20)  # sparse: no disk used
    return root


def test_compare_ranks_the_good_run_and_marks_the_hostile_ones(hostile_runs):
    done = run_cli("compare", str(hostile_runs), "--format", "json", cwd=hostile_runs.parent)
    assert done.returncode == 0, done.stderr
    runs = {Path(r["run"]).name: r for r in json.loads(done.stdout)["runs"]}
    assert runs["good"]["best"]["value"] == 0.4
    assert "run.json unreadable" in runs["deep"]["notes"]
    assert any("metrics.csv not read: 1,000,000 columns" in n for n in runs["deep"]["notes"])
    assert "metrics.csv unreadable: not a regular file" in runs["fifo"]["notes"]
    assert any("more than the 16,777,216 a run file may have" in n for n in runs["huge"]["notes"])
    table = run_cli("compare", str(hostile_runs), cwd=hostile_runs.parent)
    assert table.returncode == 0 and "good" in table.stdout, table.stderr


def test_report_and_the_latest_run_skip_what_they_cannot_read(hostile_runs):
    out = hostile_runs.parent / "report.html"
    done = run_cli("report", str(hostile_runs), "--out", str(out), cwd=hostile_runs.parent)
    assert done.returncode == 0, done.stderr
    assert "good" in out.read_text()
    assert latest_completed(hostile_runs) == hostile_runs / "good"  # deep's newer run.json is unreadable
