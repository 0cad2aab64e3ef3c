"""`dnnlab train`: the run directory, schedules epoch by epoch, exact resume, divergence, bad input.

Most runs are tiny (600 synthetic rows of 20 features, batch 16: 38 steps an epoch) and train in
process; runs that several tests read are trained once per module and shared. The kill tests start
the real `dnnlab` command in a subprocess and stop it with SIGKILL or SIGINT in the middle of an
epoch, then compare the resumed run with an uninterrupted one bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_one_line_error, read_json, read_metrics, start, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.model.build import load_model
from dnnlab.spec.loading import parse_spec
from dnnlab.training import lifecycle, session
from dnnlab.training.callbacks.divergence import Divergence
from dnnlab.training.divergence import divergence_message

TINY = {
    "name": "tiny",
    "seed": 7,
    "data": {
        "dataset": {"type": "synthetic", "shape": [20], "classes": 4, "train": 600, "test": 50},
        "validation": 100,
    },
    "model": {"hidden": [16]},
    "training": {"epochs": 4, "batch_size": 16},
}

# Dropout and batch norm make the kill tests stronger: the dropout masks and the moving
# statistics must be replayed exactly after a restart. 4000 rows at batch 8: about 0.6 s an epoch.
KILLABLE = {
    "name": "killable",
    "seed": 3,
    "data": {
        "dataset": {"type": "synthetic", "shape": [20], "classes": 4, "train": 4000, "test": 50},
        "validation": 200,
    },
    "model": {"hidden": [32, 16], "normalization": "batch_norm", "dropout": {"rate": 0.2, "where": "hidden"}},
    # 6 epochs: the signal is meant for epoch 3, and epochs 4-6 leave room for a slow machine
    # (on a loaded one a SIGINT once landed after the last epoch of 4, and the run completed).
    "training": {"epochs": 6, "batch_size": 8},
}

# With min_delta far above any change of val_loss, the monitored value never "improves" after
# epoch 0, while the weights still train normally: patience counters then advance every epoch.
NEVER_IMPROVES = 10.0

SCHEDULES = {
    "exponential": "{type: exponential, s: 2}",
    "power": "{type: power, s: 2}",
    "piecewise": "{type: piecewise, boundaries: [2, 4], values: [0.01, 0.005, 0.001]}",
    "plateau": f"{{type: plateau, factor: 0.5, patience: 2, min_delta: {NEVER_IMPROVES}}}",
    "one_cycle": "{type: one_cycle, max_lr: 0.01, unit: epoch}",
}
LR0 = 0.01
SCHEDULE_EPOCHS = 6

DNNLAB = str(Path(sys.executable).with_name("dnnlab"))


# --- helpers -------------------------------------------------------------------------------


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows as text, minus the wall time: equal text means bit-equal float32 values."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def column(run_dir: Path, name: str) -> list[float]:
    return [float(row[name]) for row in read_metrics(run_dir)]


def weights(path: Path) -> list[np.ndarray]:
    return load_model(path, compile=False).get_weights()


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        assert np.array_equal(x, y)


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    """Same epochs, every column but `seconds` identical, identical final weights."""
    assert without_seconds(read_metrics(resumed)) == without_seconds(read_metrics(uninterrupted))
    assert_same_weights(resumed / "model.keras", uninterrupted / "model.keras")
    a, b = read_json(resumed / "run.json"), read_json(uninterrupted / "run.json")
    assert (a["status"], a["epochs_done"], a["best"]) == (b["status"], b["epochs_done"], b["best"])


def interrupt_after(monkeypatch, epochs: int) -> None:
    """Simulate Ctrl-C right after epoch `epochs` is committed (the KeyboardInterrupt comes
    from the epoch-end callback, as Python raises it between two bytecodes)."""
    record = session.Session.record_epoch

    def record_then_interrupt(self, epoch, *args, **kwargs):
        record(self, epoch, *args, **kwargs)
        if epoch + 1 == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(session.Session, "record_epoch", record_then_interrupt)


def train_interrupted_then_resumed(monkeypatch, spec_path, runs_dir, overrides, k, epochs=None):
    with monkeypatch.context() as patch:
        interrupt_after(patch, k)
        first = start(spec_path, runs_dir, overrides)
    assert first.status == "interrupted", first
    assert first.exit_code == 130
    assert read_json(first.run_dir / "run.json")["status"] == "interrupted"
    assert len(read_metrics(first.run_dir)) == k
    assert not (first.run_dir / ".lock").exists()
    return lifecycle.resume(first.run_dir, epochs, ["test"])


def wait_for_rows(run_dir_parent: Path, rows: int, process: subprocess.Popen, timeout: float = 240) -> Path:
    """The run directory, once its metrics.csv has `rows` data rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for run_dir in run_dir_parent.glob("*"):
            metrics = run_dir / "metrics.csv"
            if metrics.exists() and len(metrics.read_text().splitlines()) - 1 >= rows:
                return run_dir
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no run reached {rows} epochs in {timeout} s")


def cli_train(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([DNNLAB, "train", *args], capture_output=True, text=True, timeout=300, **kwargs)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


runner = CliRunner()


# --- shared runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def tiny_spec(module_dir) -> Path:
    return write_spec(module_dir / "specs", TINY)


@pytest.fixture(scope="module")
def completed_run(module_dir, tiny_spec) -> Path:
    """A finished 4-epoch run with a schedule and early stopping (which does not trigger)."""
    result = start(
        tiny_spec,
        module_dir / "runs-completed",
        ["training.schedule={type: exponential, s: 2}", "training.early_stopping={patience: 10}"],
    )
    assert result.status == "completed"
    return result.run_dir


@pytest.fixture(scope="module")
def schedule_run(module_dir, tiny_spec):
    """schedule_run(name) -> the run dir of an uninterrupted SCHEDULE_EPOCHS-epoch run, trained once."""
    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            result = start(tiny_spec, module_dir / f"runs-{name}", schedule_overrides(name))
            assert result.status == "completed"
            runs[name] = result.run_dir
        return runs[name]

    return get


# The tiny runs are too short for automatic XLA; the one-cycle ones use it, so that resume is
# checked bit for bit on both execution paths (the kill tests' dropout model runs without).
XLA_SCHEDULES = ("one_cycle",)


def schedule_overrides(name: str, epochs: int = SCHEDULE_EPOCHS) -> list[str]:
    return [
        f"training.epochs={epochs}",
        f"training.optimizer={{type: sgd, learning_rate: {LR0}, momentum: 0.9}}",
        f"training.schedule={SCHEDULES[name]}",
        f"training.jit_compile={str(name in XLA_SCHEDULES).lower()}",
    ]


# --- the run directory ---------------------------------------------------------------------


def test_config_yaml_is_the_resolved_spec(completed_run):
    config = yaml.safe_load((completed_run / "config.yaml").read_text())
    assert config["name"] == "tiny" and config["seed"] == 7
    assert config["training"]["optimizer"]["beta_1"] == 0.9  # a default of nadam, filled in
    assert config["training"]["optimizer"]["type"] == "nadam"
    assert config["training"]["loss"] == "sparse_categorical_crossentropy"  # inferred
    assert config["model"]["output"]["units"] == 4  # inferred from the dataset
    assert config["training"]["schedule"] == {"type": "exponential", "s": 2, "base": 0.1, "unit": "epoch"}
    assert config["training"]["early_stopping"]["monitor"] == "val_loss"


def test_run_json_records_the_run(completed_run):
    record = read_json(completed_run / "run.json")
    assert record["status"] == "completed"
    assert record["epochs_done"] == 4
    assert record["seed"] == 7
    assert set(record["best"]) >= {"metric", "value", "epoch"}
    assert record["best"]["metric"] == "val_loss"
    rows = read_metrics(completed_run)
    losses = [float(row["val_loss"]) for row in rows]
    assert record["best"]["epoch"] == int(np.argmin(losses))
    assert record["best"]["value"] == pytest.approx(min(losses), rel=1e-6)
    assert len(record["config_hash"]) >= 16
    assert {"dnnlab", "tensorflow", "keras"} <= set(record["versions"])
    assert record["host"]
    assert record["command"] == ["test"]
    assert record["started"] <= record["finished"]


def test_metrics_csv_has_one_row_per_epoch(completed_run):
    rows = read_metrics(completed_run)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    header = (completed_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(header) == {"epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert header[0] == "epoch" and header[-1] == "seconds"
    for row in rows:
        assert all(math.isfinite(float(value)) for value in row.values())


def test_metrics_csv_columns_in_contract_order(completed_run):
    header = (completed_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]


def test_checkpoints_and_model_load(completed_run):
    record = read_json(completed_run / "run.json")
    for name in ("checkpoints/last.keras", "checkpoints/best.keras", "model.keras"):
        model = load_model(completed_run / name)
        assert model.output_shape == (None, 4)
    # last.keras is the model after the final epoch, with its optimizer state (500 rows / 16)
    last = load_model(completed_run / "checkpoints/last.keras")
    assert int(last.optimizer.iterations.numpy()) == 4 * 32
    assert_same_weights(completed_run / "checkpoints/last.keras", completed_run / "model.keras")
    if record["best"]["epoch"] == 3:
        assert_same_weights(completed_run / "checkpoints/best.keras", completed_run / "model.keras")


def test_best_checkpoint_is_the_best_epoch(tiny_spec, tmp_path):
    """With a rising learning rate val_loss gets worse late: best.keras must stay at the best epoch."""
    result = start(
        tiny_spec,
        tmp_path,
        [
            "training.epochs=5",
            "training.optimizer={type: sgd, learning_rate: 0.05}",
            "training.schedule={type: exponential, s: 1, base: 4}",  # x4 every epoch
            "training.monitor=val_accuracy",
        ],
    )
    rows = read_metrics(result.run_dir)
    accuracy = [float(row["val_accuracy"]) for row in rows]
    best_epoch = int(np.argmax(accuracy))  # first maximum, as "improved" means strictly better
    assert result.best.epoch == best_epoch
    assert result.best.metric == "val_accuracy"
    assert result.best.value == pytest.approx(accuracy[best_epoch])
    if best_epoch != len(rows) - 1:
        assert not np.array_equal(
            weights(result.run_dir / "checkpoints/best.keras")[0],
            weights(result.run_dir / "checkpoints/last.keras")[0],
        )


def test_state_preprocessing_summary_tensorboard(completed_run):
    state = read_json(completed_run / "state.json")
    assert state["epochs_done"] == 4
    assert "early_stopping" in state["callbacks"]
    scaling = read_json(completed_run / "preprocessing.json")["scaling"]
    assert scaling["method"] == "standardize"
    assert len(scaling["offset"]) == 20  # one statistic per feature, from the training split
    summary = (completed_run / "summary.txt").read_text()
    assert "Total params" in summary and "Trainable params" in summary
    events = [p for p in (completed_run / "tensorboard").rglob("*") if p.is_file()]
    assert events and all(p.stat().st_size > 0 for p in events)


def test_no_temporary_files_left(completed_run):
    leftovers = [p.name for p in completed_run.rglob("*") if ".tmp" in p.name or p.name.endswith(".link")]
    assert leftovers == []


def test_lock_file_is_gone_after_the_run(completed_run):
    assert not (completed_run / ".lock").exists()


def test_same_name_gets_new_directories_and_same_seed_gives_same_metrics(tiny_spec, tmp_path):
    overrides = ["training.epochs=3", "model.dropout={rate: 0.3}"]
    first = start(tiny_spec, tmp_path, overrides)
    second = start(tiny_spec, tmp_path, overrides)
    assert first.run_dir != second.run_dir
    assert first.run_dir.parent == second.run_dir.parent == tmp_path
    assert first.run_dir.name.startswith("tiny-") and second.run_dir.name.startswith("tiny-")
    assert without_seconds(read_metrics(first.run_dir)) == without_seconds(read_metrics(second.run_dir))
    assert_same_weights(first.run_dir / "model.keras", second.run_dir / "model.keras")


def test_train_says_on_one_line_whether_it_took_xla_and_why_but_not_when_quiet(tiny_spec, tmp_path):
    told = invoke(tiny_spec, "--runs-dir", tmp_path / "told", "-o", "training.epochs=1")
    assert told.exit_code == 0, told.output
    said = [line for line in told.stderr.splitlines() if line.startswith("XLA ")]
    assert len(said) == 1 and re.match(r"XLA off: compile ~\d+\.\d s, .* over 1 epoch$", said[0]), said
    quiet = invoke(tiny_spec, "--runs-dir", tmp_path / "quiet", "-o", "training.epochs=1", "-q")
    assert quiet.exit_code == 0 and "XLA" not in quiet.stderr


def test_name_option_names_the_directory(tiny_spec, tmp_path):
    result = start(tiny_spec, tmp_path, ["training.epochs=1"], name="other")
    assert result.run_dir.name.startswith("other-")


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a/b", ".hidden", "x" * 101])
def test_a_name_that_is_not_a_folder_name_is_refused_before_anything_is_written(tiny_spec, tmp_path, name):
    runs = tmp_path / "deep" / "runs"
    result = invoke(tiny_spec, "--runs-dir", runs, "--name", name)
    assert_one_line_error(result, "--name", "cannot name a run")
    assert list(tmp_path.iterdir()) == []  # no runs folder, nothing at ../../escape-*


def test_runs_dir_that_is_a_file_is_one_line(tiny_spec, tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    assert_one_line_error(invoke(tiny_spec, "--runs-dir", runs), "--runs-dir", "is a file")


# --- the learning rate column --------------------------------------------------------------


def expected_lr(name: str, epochs: int) -> list[float]:
    t = np.arange(epochs, dtype=float)
    if name == "exponential":
        return list(LR0 * 0.1 ** (t / 2))
    if name == "power":
        return list(LR0 / (1 + t / 2))
    if name == "piecewise":
        return [0.01 if e < 2 else 0.005 if e < 4 else 0.001 for e in range(epochs)]
    if name == "plateau":
        # epoch 0 sets the best; nothing improves after it, so every `patience` (2) epochs
        # without improvement halve the rate, which the next epoch's row shows
        return [LR0 * 0.5 ** ((e - 1) // 2) if e else LR0 for e in range(epochs)]
    if name == "one_cycle":
        # max_lr 0.01, start max_lr/10, final start/1000, last_fraction 0.1 over `epochs` units:
        # half = floor(epochs * 0.9 / 2); up over [0, half], down over [half, 2 half], then anneal
        start, peak, final = 0.001, 0.01, 1e-6
        half = math.floor(epochs * 0.9 / 2)
        out = []
        for e in range(epochs):
            if e < half:
                out.append(start + (peak - start) * e / half)
            elif e < 2 * half:
                out.append(peak + (start - peak) * (e - half) / half)
            elif e < epochs - 1:
                out.append(start + (final - start) * (e - 2 * half) / max(epochs - 1 - 2 * half, 1))
            else:
                out.append(final)
        return out
    raise KeyError(name)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_column_follows_the_formula(schedule_run, name):
    run_dir = schedule_run(name)
    assert column(run_dir, "lr") == pytest.approx(expected_lr(name, SCHEDULE_EPOCHS), rel=1e-5)


def test_one_cycle_rises_then_falls(schedule_run):
    lr = column(schedule_run("one_cycle"), "lr")
    peak = int(np.argmax(lr))
    assert 0 < peak < len(lr) - 1
    assert lr[peak] == pytest.approx(0.01)
    assert all(a < b for a, b in zip(lr[:peak], lr[1 : peak + 1]))
    assert all(a > b for a, b in zip(lr[peak:], lr[peak + 1 :]))


def test_plateau_state_is_saved(schedule_run):
    state = read_json(schedule_run("plateau") / "state.json")
    plateau = state["callbacks"]["plateau"]
    assert set(plateau) >= {"wait", "best", "cooldown_counter"}
    # epochs 1..5 never improve: the reductions came after epochs 2 and 4, wait is 1 after epoch 5
    assert plateau["wait"] == 1


@pytest.mark.slow
def test_piecewise_of_gerons_example(tiny_spec, tmp_path):
    """Géron's example: 0.01 for epochs 0-4, 0.005 for 5-14, 0.001 from 15."""
    result = start(
        tiny_spec,
        tmp_path,
        [
            "training.epochs=17",
            "data.dataset.train=300",
            "training.optimizer={type: sgd}",
            "training.schedule={type: piecewise, boundaries: [5, 15], values: [0.01, 0.005, 0.001]}",
        ],
    )
    assert column(result.run_dir, "lr") == pytest.approx([0.01] * 5 + [0.005] * 10 + [0.001] * 2)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_continues_across_an_interruption(schedule_run, tiny_spec, tmp_path, monkeypatch, name):
    """Ctrl-C after epoch 3 and --resume: every column (lr included) and the weights equal the
    uninterrupted run's. Epoch 3 sits mid-way in the plateau's patience and the one-cycle rise."""
    resumed = train_interrupted_then_resumed(monkeypatch, tiny_spec, tmp_path, schedule_overrides(name), 3)
    assert resumed.status == "completed"
    assert_same_run(resumed.run_dir, schedule_run(name))


def test_run_left_running_by_a_kill_resumes_exactly(schedule_run, tiny_spec, tmp_path, monkeypatch):
    """What SIGKILL leaves on disk (fast, in process): status `running`, no `finished`, and a
    metrics row past the last commit. --resume ignores the row and replays that epoch."""
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        first = start(tiny_spec, tmp_path, schedule_overrides("exponential"))
    run_dir = first.run_dir
    record = read_json(run_dir / "run.json")
    record.update(status="running", finished=None)
    (run_dir / "run.json").write_text(json.dumps(record))
    with open(run_dir / "metrics.csv", "a") as handle:  # written, then killed before the commit
        handle.write("2,0.5,0.5,9.0,0.5,9.0,1.0\n")
    result = invoke("--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert read_json(run_dir / "run.json")["status"] == "completed"
    assert_same_run(run_dir, schedule_run("exponential"))


@pytest.mark.parametrize(
    "name",
    [
        "exponential",
        "plateau",
    ],
)
def test_completed_run_extended_equals_longer_run(schedule_run, tiny_spec, tmp_path, name):
    """A run completed at 3 epochs and extended to 6 with --epochs equals a 6-epoch run (the
    config hash differs only in training.epochs, which --epochs replaces)."""
    first = start(tiny_spec, tmp_path, schedule_overrides(name, epochs=3))
    assert first.status == "completed" and first.epochs_done == 3
    extended = lifecycle.resume(first.run_dir, SCHEDULE_EPOCHS, ["test"])
    assert extended.status == "completed" and extended.epochs_done == SCHEDULE_EPOCHS
    reference = schedule_run(name)
    assert column(extended.run_dir, "lr") == column(reference, "lr")
    assert without_seconds(read_metrics(extended.run_dir)) == without_seconds(read_metrics(reference))
    assert_same_weights(extended.run_dir / "model.keras", reference / "model.keras")


def test_extending_one_cycle_keeps_its_cycle_and_says_so(tiny_spec, tmp_path, caplog):
    """The cycle is compiled into the saved optimizer: epochs past it run at final_lr, and the
    user is told so instead of silently getting a different schedule."""
    first = start(tiny_spec, tmp_path, schedule_overrides("one_cycle", epochs=3))
    with caplog.at_level("WARNING", logger="dnnlab"):
        extended = lifecycle.resume(first.run_dir, SCHEDULE_EPOCHS, ["test"])
    assert "one_cycle keeps the cycle of 3 epochs" in caplog.text
    rates = column(extended.run_dir, "lr")
    assert rates[:3] == column(first.run_dir, "lr")[:3]
    assert len(set(rates[2:])) == 1  # final_lr from the end of the original cycle on


# --- early stopping across a resume --------------------------------------------------------

EARLY_STOPPING = [
    "training.epochs=12",
    f"training.early_stopping={{patience: 3, min_delta: {NEVER_IMPROVES}, restore_best_weights: false}}",
]


@pytest.fixture(scope="module")
def early_stopped_run(module_dir, tiny_spec) -> Path:
    result = start(tiny_spec, module_dir / "runs-early", EARLY_STOPPING)
    return result.run_dir


def test_early_stopping_stops_after_patience(early_stopped_run):
    record = read_json(early_stopped_run / "run.json")
    # epoch 0 is the best; epochs 1, 2, 3 do not improve: stop after epoch 3
    assert record["status"] == "completed"
    assert record["epochs_done"] == 4
    state = read_json(early_stopped_run / "state.json")
    assert state["callbacks"]["early_stopping"]["wait"] == 3


def test_early_stopping_patience_continues_across_a_resume(
    early_stopped_run, tiny_spec, tmp_path, monkeypatch
):
    resumed = train_interrupted_then_resumed(monkeypatch, tiny_spec, tmp_path, EARLY_STOPPING, 2)
    assert resumed.epochs_done == 4  # not 2 + 4: the wait of 1 after epoch 1 was kept
    assert_same_run(resumed.run_dir, early_stopped_run)


def test_state_json_of_an_older_dnnlab_resumes(early_stopped_run, tiny_spec, tmp_path, monkeypatch):
    """state.json without `version`, its callbacks keyed by class name, as dnnlab wrote it before."""
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        first = start(tiny_spec, tmp_path, EARLY_STOPPING)
    state_file = first.run_dir / "state.json"
    state = read_json(state_file)
    del state["version"]
    state["callbacks"] = {"ResumableEarlyStopping": state["callbacks"].pop("early_stopping")}
    state_file.write_text(json.dumps(state))
    resumed = lifecycle.resume(first.run_dir, None, ["test"])
    assert resumed.epochs_done == 4  # the patience counter was read from the old key
    assert_same_run(resumed.run_dir, early_stopped_run)


def test_a_run_of_an_older_dnnlab_resumes_with_the_split_it_had(tiny_spec, tmp_path, monkeypatch):
    """config.yaml from before data.split_seed and training.diagnostics, when the seed decided the
    split: the run is recognized as unedited and resumes on the same data as before."""
    overrides = ["training.epochs=3", "data.split_seed=7"]  # 7 is TINY's seed: the old behaviour
    reference = start(tiny_spec, tmp_path / "reference", overrides).run_dir
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        first = start(tiny_spec, tmp_path / "old", overrides)
    config = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    del config["data"]["split_seed"], config["training"]["diagnostics"]
    (first.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    record = read_json(first.run_dir / "run.json")
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    record["config_hash"] = hashlib.sha256(canonical.encode()).hexdigest()  # as it was computed then
    (first.run_dir / "run.json").write_text(json.dumps(record))
    resumed = lifecycle.resume(first.run_dir, None, ["test"])
    assert resumed.status == "completed"
    assert without_seconds(read_metrics(first.run_dir)) == without_seconds(read_metrics(reference))


def test_early_stopping_counter_is_in_state_json(tiny_spec, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)
        first = start(tiny_spec, tmp_path, EARLY_STOPPING)
    saved = read_json(first.run_dir / "state.json")["callbacks"]["early_stopping"]
    assert saved["wait"] == 2 and saved["best_epoch"] == 0


def test_resume_of_an_early_stopped_run_trains_nothing(early_stopped_run, tmp_path):
    import shutil

    run_dir = tmp_path / early_stopped_run.name
    shutil.copytree(early_stopped_run, run_dir)
    before = read_metrics(run_dir)
    result = invoke("--resume", run_dir)
    assert result.exit_code in (0, 2), result.output
    assert read_metrics(run_dir) == before


def test_restore_best_weights_across_a_resume(tiny_spec, tmp_path, monkeypatch):
    """Epoch 0 is early stopping's best (nothing improves by min_delta after it): the final
    model is epoch 0's, with or without an interruption after epoch 2."""
    overrides = [
        "training.epochs=12",
        f"training.early_stopping={{patience: 3, min_delta: {NEVER_IMPROVES}, restore_best_weights: true}}",
    ]
    reference = start(tiny_spec, tmp_path / "a", overrides)
    resumed = train_interrupted_then_resumed(monkeypatch, tiny_spec, tmp_path / "b", overrides, 2)
    assert_same_run(resumed.run_dir, reference.run_dir)
    assert read_json(resumed.run_dir / "state.json")["callbacks"]["early_stopping"]["best_epoch"] == 0


# --- divergence ----------------------------------------------------------------------------

DIVERGING = [
    "training.epochs=3",
    "training.optimizer={type: sgd, learning_rate: 1000.0}",
    "model.initializer={type: variance_scaling, scale: 100.0}",
    "data.scaling=none",
]


def test_divergence_is_recorded_and_last_checkpoint_is_finite(tiny_spec, tmp_path):
    result = runner.invoke(
        app, ["train", str(tiny_spec), "--runs-dir", str(tmp_path), *sum((["-o", o] for o in DIVERGING), [])]
    )
    assert result.exit_code == 1, result.output
    (run_dir,) = list(tmp_path.iterdir())
    record = read_json(run_dir / "run.json")
    assert record["status"] == "diverged"
    assert record["finished"]
    for name in ("checkpoints/last.keras", "model.keras"):
        assert all(np.isfinite(w).all() for w in weights(run_dir / name))
    rows = read_metrics(run_dir)
    assert len(rows) == record["epochs_done"] < 3
    assert all(math.isfinite(float(v)) for row in rows for v in row.values())


def test_diverged_cli_run_says_what_to_try_and_keeps_stdout_clean(tmp_path):
    """Only the run directory on stdout (Keras's TerminateOnNaN would print there), exit code 1,
    and a message on stderr that names the epoch and the remedies."""
    spec = write_spec(
        tmp_path / "specs",
        {
            "name": "diverging",
            "seed": 1,
            "data": {"dataset": "digits", "validation": 200},
            "model": {"hidden": [8]},
            "training": {"epochs": 2, "optimizer": {"type": "sgd", "learning_rate": 1e6}},
        },
    )
    done = cli_train(str(spec), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 1, done.stderr
    (run_dir,) = list((tmp_path / "runs").iterdir())
    assert done.stdout == f"{run_dir}\n"
    assert read_json(run_dir / "run.json")["status"] == "diverged"
    assert "diverged in epoch 1" in done.stderr
    for remedy in ("learning rate (it was 1e+06", "clipnorm: 1.0", "batch_norm"):
        assert remedy in done.stderr, done.stderr
    assert not (run_dir / ".lock").exists()


def test_divergence_message_names_the_paired_initializer():
    spec = parse_spec(
        {
            "data": {"dataset": "digits"},
            "model": {"hidden": [8], "activation": "selu", "initializer": "he_normal"},
            "training": {"optimizer": {"type": "sgd", "learning_rate": 0.5, "clipnorm": 1.0}},
        }
    )
    divergence = Divergence(epoch=2, values={"loss": float("nan")}, learning_rate=0.5)
    message = divergence_message(spec, divergence)
    assert message.startswith("training diverged in epoch 3: loss nan.")
    assert "model.initializer: lecun_normal" in message and "clipnorm" not in message


# --- bad input -----------------------------------------------------------------------------


def invoke(*args: str):
    return runner.invoke(app, ["train", *map(str, args)])


def test_resume_refuses_an_edited_config(completed_run, tmp_path):
    import shutil

    run_dir = tmp_path / completed_run.name
    shutil.copytree(completed_run, run_dir)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("learning_rate: 0.001", "learning_rate: 0.002"))
    before = (run_dir / "metrics.csv").read_text()
    result = invoke("--resume", run_dir, "--epochs", 6)
    assert_one_line_error(result, "edited")
    assert "hash" in result.stderr
    assert (run_dir / "metrics.csv").read_text() == before
    assert read_json(run_dir / "run.json")["status"] == "completed"


def test_resume_of_a_missing_directory(tmp_path):
    assert_one_line_error(invoke("--resume", tmp_path / "nope"), "no such")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(invoke("--resume", tmp_path), "not a run directory")


def test_resume_epochs_must_exceed_epochs_done(completed_run):
    before = (completed_run / "run.json").read_text()
    for epochs in (4, 2):
        assert_one_line_error(invoke("--resume", completed_run, "--epochs", epochs), "already done")
    assert (completed_run / "run.json").read_text() == before


def test_a_run_killed_while_finishing_is_finished_by_resume(early_stopped_run, tiny_spec, tmp_path):
    """Every epoch committed, then a kill before model.keras and the final status: --resume,
    with no --epochs, trains nothing and finishes the run as the uninterrupted one finished."""
    run_dir = start(tiny_spec, tmp_path, EARLY_STOPPING).run_dir
    metrics = (run_dir / "metrics.csv").read_text()
    (run_dir / "model.keras").unlink()
    record = read_json(run_dir / "run.json")
    record.update(status="running", finished=None)
    (run_dir / "run.json").write_text(json.dumps(record))
    result = invoke("--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert read_json(run_dir / "run.json")["status"] == "completed"
    assert (run_dir / "metrics.csv").read_text() == metrics
    assert_same_run(run_dir, early_stopped_run)  # model.keras: the restored best weights again


def test_bad_spec_leaves_no_run_directory(tmp_path):
    spec = write_spec(tmp_path / "specs", {**TINY, "training": {"epochs": 2, "batch_sise": 16}})
    runs = tmp_path / "runs"
    result = invoke(spec, "--runs-dir", runs)
    assert_one_line_error(result, "batch_sise")
    assert not runs.exists() or not any(runs.iterdir())


def test_bad_override_leaves_no_run_directory(tiny_spec, tmp_path):
    runs = tmp_path / "runs"
    result = invoke(tiny_spec, "--runs-dir", runs, "-o", "training.optimizer.learning_rate=-1")
    assert result.exit_code == 2
    assert not runs.exists() or not any(runs.iterdir())


def test_missing_dataset_file_leaves_no_run_directory(tmp_path):
    spec = write_spec(
        tmp_path / "specs",
        {**TINY, "data": {"dataset": {"type": "npz", "path": str(tmp_path / "missing.npz")}}},
    )
    runs = tmp_path / "runs"
    result = invoke(spec, "--runs-dir", runs)
    assert_one_line_error(result, "missing.npz")
    assert not runs.exists() or not any(runs.iterdir())


def test_unreadable_dataset_file_leaves_no_run_directory(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    spec = write_spec(tmp_path / "specs", {**TINY, "data": {"dataset": {"type": "npz", "path": str(bad)}}})
    runs = tmp_path / "runs"
    result = invoke(spec, "--runs-dir", runs)
    assert result.exit_code == 2, result.output
    assert not runs.exists() or not any(runs.iterdir())


def test_epochs_without_resume_is_refused(tiny_spec, tmp_path):
    assert_one_line_error(invoke(tiny_spec, "--runs-dir", tmp_path, "--epochs", 3), "--epochs")
    assert not any(tmp_path.iterdir())


def test_cli_train_prints_the_run_directory(tiny_spec, tmp_path):
    result = invoke(tiny_spec, "--runs-dir", tmp_path, "-o", "training.epochs=1")
    assert result.exit_code == 0, result.output
    (run_dir,) = list(tmp_path.iterdir())
    assert result.stdout.strip() == str(run_dir)
    assert read_json(run_dir / "run.json")["status"] == "completed"


# --- killed and interrupted processes ------------------------------------------------------


@pytest.fixture(scope="module")
def killable_spec(module_dir) -> Path:
    return write_spec(module_dir / "specs", KILLABLE, "killable.yaml")


@pytest.fixture(scope="module")
def uninterrupted_killable(module_dir, killable_spec) -> Path:
    """The reference: the killable spec trained start to finish by the `dnnlab` command."""
    runs = module_dir / "runs-killable-reference"
    done = cli_train(str(killable_spec), "--runs-dir", str(runs))
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip())
    assert read_json(run_dir / "run.json")["command"] == [
        "dnnlab",
        "train",
        str(killable_spec),
        "--runs-dir",
        str(runs),
    ]
    return run_dir


def start_and_stop(spec: Path, runs: Path, sig: int) -> tuple[Path, int]:
    """Start `dnnlab train`, wait for 2 finished epochs, send `sig` a fraction into epoch 3."""
    process = subprocess.Popen(
        [DNNLAB, "train", str(spec), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_dir = wait_for_rows(runs, 2, process)
        seconds = float(read_metrics(run_dir)[-1]["seconds"])
        time.sleep(0.4 * seconds)
        assert process.poll() is None, "the run finished before it could be stopped"
        process.send_signal(sig)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return run_dir, process.returncode


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(killable_spec, uninterrupted_killable, tmp_path):
    run_dir, code = start_and_stop(killable_spec, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    record = read_json(run_dir / "run.json")
    assert record["status"] == "running"  # nobody was left to say otherwise
    done = read_json(run_dir / "state.json")["epochs_done"]
    assert 2 <= done < 6, "the kill should land in epoch 3 (or later on a slow machine)"
    resumed = cli_train("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert Path(resumed.stdout.strip()) == run_dir
    assert read_json(run_dir / "run.json")["status"] == "completed"
    assert_same_run(run_dir, uninterrupted_killable)
    assert_same_weights(run_dir / "checkpoints/last.keras", uninterrupted_killable / "checkpoints/last.keras")


def test_sigint_mid_epoch_is_interrupted_then_resume_equals_uninterrupted(
    killable_spec, uninterrupted_killable, tmp_path
):
    run_dir, code = start_and_stop(killable_spec, tmp_path, signal.SIGINT)
    assert code == 130
    record = read_json(run_dir / "run.json")
    assert record["status"] == "interrupted"
    assert record["finished"]
    assert record["epochs_done"] == len(read_metrics(run_dir)) >= 2
    assert not (run_dir / ".lock").exists()
    resumed = lifecycle.resume(run_dir, None, ["test"])  # in process: the same code as --resume
    assert resumed.status == "completed" and resumed.exit_code == 0
    assert_same_run(run_dir, uninterrupted_killable)


def test_resume_of_a_live_run_is_refused(killable_spec, tmp_path):
    # Far more epochs than the test waits for: the run is still live however slow the machine.
    process = subprocess.Popen(
        [DNNLAB, "train", str(killable_spec), "--runs-dir", str(tmp_path), "-o", "training.epochs=1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_dir = wait_for_rows(tmp_path, 1, process)
        result = invoke("--resume", run_dir, "--epochs", 9)
        assert_one_line_error(result, "another dnnlab process")
    finally:
        process.kill()
        process.communicate()


def test_execution_plan_is_recorded_for_resume(completed_run, schedule_run):
    """The settings a run executed with are in state.json, so a resume reuses them exactly."""
    execution = read_json(completed_run / "state.json")["execution"]
    assert execution["jit_compile"] is False  # 4 epochs of 32 steps: too short to pay for XLA
    assert read_json(schedule_run("one_cycle") / "state.json")["execution"]["jit_compile"] is True
    assert execution["steps_per_execution"] >= 1
