"""`dnnlab sweep`: the axis grammar, expansion and names (no TensorFlow), then a few end-to-end
sweeps on digits with a tiny model (each pays TensorFlow's import once per worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import read_json, read_metrics, tiny_spec, train_run
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.errors import ConfigError
from dnnlab.sweep.axes import parse_axis_option
from dnnlab.sweep.definition import build_sweep, read_sweep_file
from dnnlab.sweep.trial_dirs import trial_path
from dnnlab.sweep.trials import expand, expand_and_check, is_trial_name, trial_dir_name

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_spec()


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


# --- the axis grammar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("model.activation=relu,elu,selu", ("relu", "elu", "selu")),
        ("model.hidden=[64,32],[128]", ([64, 32], [128])),
        ("training.optimizer={type: sgd, momentum: 0.9},adam", ({"type": "sgd", "momentum": 0.9}, "adam")),
        ("training.optimizer.learning_rate=1e-3,0.01", (0.001, 0.01)),
        ("training.batch_size=range(16,64,16)", (16, 32, 48)),
        ("training.epochs=range(1,3)", (1, 2)),
        ("model.activation=choice(relu,elu)", ("relu", "elu")),
        ("seed=7", (7,)),
    ],
)
def test_list_axes(option, values):
    axis = parse_axis_option(option)
    assert axis.is_list and axis.values == values


@pytest.mark.parametrize(
    ("option", "kind", "bounds"),
    [
        ("training.optimizer.learning_rate=loguniform(1e-4,1e-1)", "loguniform", (1e-4, 1e-1)),
        ("model.dropout.rate=uniform(0,0.5)", "uniform", (0, 0.5)),
        ("training.batch_size=randint(16,65)", "randint", (16, 65)),
    ],
)
def test_distribution_axes(option, kind, bounds):
    axis = parse_axis_option(option)
    assert axis.kind == kind and (axis.low, axis.high) == bounds


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("model.activation=", "no values"),
        ("model.activation=relu,,elu", "empty value"),
        ("model.activation", "expected KEY=AXIS"),
        ("=relu", "dotted spec key"),
        ("lr=loguniform(0,1)", "0 < a < b"),
        ("lr=uniform(1,1)", "a < b"),
        ("lr=uniform(1)", "two numbers"),
        ("lr=normal(0,1)", "unknown sweep function normal"),
        ("lr=range(5,1)", "is empty"),
        ("lr=randint(1.5,3)", "integers"),
        ("model.activation=relu,relu", "listed twice"),
    ],
)
def test_axis_errors_are_one_line(option, says):
    with pytest.raises(ConfigError) as caught:
        parse_axis_option(option)
    assert says in str(caught.value) and "\n" not in str(caught.value)


# --- expansion -----------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_seeds_innermost(tiny):
    sweep = build_sweep(
        tiny, ["training.epochs=1"], ["model.activation=relu,elu", "model.hidden=[8],[4,4]"], "2"
    )
    trials, varying = expand(sweep, spec_seed=3)
    assert [t.params for t in trials[:3]] == [
        {"model.activation": "relu", "model.hidden": [8], "seed": 0},
        {"model.activation": "relu", "model.hidden": [8], "seed": 1},
        {"model.activation": "relu", "model.hidden": [4, 4], "seed": 0},
    ]
    assert len(trials) == 8 and varying == ["model.activation", "model.hidden", "seed"]
    assert [t.run for t in trials[2:4]] == [
        "002-activation=relu-hidden=4x4-seed=0",
        "003-activation=relu-hidden=4x4-seed=1",
    ]
    assert "training.epochs=1" in trials[0].overrides(sweep) and "seed=0" in trials[0].overrides(sweep)


def test_seeds_count_and_list_and_default(tiny):
    assert build_sweep(tiny, seeds="3").seeds == (0, 1, 2)
    assert build_sweep(tiny, seeds="5,1").seeds == (5, 1)
    trials, varying = expand(build_sweep(tiny, axes=["model.activation=relu,elu"]), spec_seed=3)
    assert [t.params["seed"] for t in trials] == [3, 3] and varying == ["model.activation"]
    for bad in ("0", "a", "1,1"):
        with pytest.raises(ConfigError):
            build_sweep(tiny, seeds=bad)


def test_random_draws_are_seeded_by_the_sweep(tiny):
    axes = ["training.optimizer.learning_rate=loguniform(1e-4,1e-1)", "model.activation=relu,elu"]
    first = expand(build_sweep(tiny, axes=axes, random_trials=5), 3)[0]
    again = expand(build_sweep(tiny, axes=axes, random_trials=5), 3)[0]
    assert [t.params for t in first] == [t.params for t in again] and len(first) == 5
    rates = [t.params["training.optimizer.learning_rate"] for t in first]
    assert all(1e-4 <= r <= 1e-1 for r in rates) and len(set(rates)) == 5
    assert first[0].run.startswith("000-learning_rate=")


def test_a_distribution_in_a_grid_is_refused(tiny):
    sweep = build_sweep(tiny, axes=["training.optimizer.learning_rate=uniform(0.001,0.1)"])
    with pytest.raises(ConfigError, match="--random N"):
        expand(sweep, 3)


def test_directory_names_are_safe_and_short():
    params = {"model.activation": {"type": "leaky_relu", "alpha": 0.2}, "a.b": "x/y z", "seed": 1}
    name = trial_dir_name(12, params, list(params))
    assert name == "012-activation=leaky_relu_alpha0.2-a.b=y_z-seed=1"  # a path: its last part
    # A mapping axis shows its type, then only the keys on which its values differ.
    optimizers = [
        {"type": t, "learning_rate": 0.001, "beta_1": b} for t, b in (("adam", 0.9), ("nadam", 0.8))
    ]
    names = [
        trial_dir_name(
            i, {"training.optimizer": o}, ["training.optimizer"], values={"training.optimizer": optimizers}
        )
        for i, o in enumerate(optimizers)
    ]
    assert names == ["000-optimizer=adam_beta_10.9", "001-optimizer=nadam_beta_10.8"]
    models = [{"hidden": [8]}, {"hidden": [8], "regularizer": {"type": "l2", "factor": 0.01}}]
    assert [
        trial_dir_name(i, {"model": m}, ["model"], values={"model": models}) for i, m in enumerate(models)
    ] == ["000-model=none", "001-model=regularizer_l2_factor0.01"]
    long = trial_dir_name(1, {"k": "v" * 300}, ["k"])
    assert len(long) <= 96 and long.startswith("001-k=")


@pytest.mark.parametrize(
    ("axis", "names"),
    [
        ("model.transfer.run=runs/a,runs/b", ["000-transfer.run=a", "001-transfer.run=b"]),
        # Two runs of one name in different folders: each keeps the parent that tells them apart.
        (
            "model.transfer.run=/data/x/a,/data/y/a/,runs/b",
            ["000-transfer.run=x_a", "001-transfer.run=y_a", "002-transfer.run=b"],
        ),
        (
            "model.transfer.run=other/runs/a,runs/a",
            ["000-transfer.run=other_runs_a", "001-transfer.run=runs_a"],
        ),
        ("data.path=../tables/one.csv,../tables/two.csv", ["000-data.path=one.csv", "001-data.path=two.csv"]),
    ],
)
def test_a_path_axis_names_trials_by_the_folder_not_the_whole_path(tiny, tmp_path, axis, names):
    trials, _ = expand(build_sweep(tiny, axes=[axis]), spec_seed=3)
    assert [t.run for t in trials] == names
    for trial in trials:  # what --resume accepts as a trial's folder
        assert is_trial_name(trial.run, trial.id)
        assert trial_path(tmp_path, trial.run) == tmp_path / trial.run


def test_every_trial_is_checked_before_any_starts(tiny):
    sweep = build_sweep(tiny, axes=["model.hidden=[8],[0]"])
    with pytest.raises(ConfigError, match=r"trial 001-hidden=0"):
        expand_and_check(sweep)


def test_the_example_sweep_file_is_valid():
    path = ROOT / "configs" / "sweeps" / "quickstart_grid.yaml"
    sweep = read_sweep_file(path)
    expansion = expand_and_check(sweep)
    assert len(expansion.trials) == 12 and sweep.seeds == (0, 1, 2)
    assert sweep.spec["name"] == "quickstart"  # the spec: path is read relative to the sweep file


def test_the_optimizer_sweep_of_the_readme_is_valid():
    sweep = read_sweep_file(ROOT / "configs" / "sweeps" / "optimizers_digits.yaml")
    trials = expand_and_check(sweep).trials
    assert len(trials) == 15 and sweep.seeds == (0, 1, 2, 3, 4)
    assert [t.params["training.optimizer"]["type"] for t in trials[::5]] == ["sgd", "adam", "nadam"]


# The sweeps behind README's "Géron's claims on digits": trials per claim, 3 seeds each.
CLAIM_SWEEPS = {"activations": 18, "regularization": 12, "schedules": 18, "selu": 12, "transfer": 6}


@pytest.mark.parametrize(("name", "count"), sorted(CLAIM_SWEEPS.items()))
def test_the_claim_sweeps_of_the_readme_are_valid(name, count):
    sweep = read_sweep_file(ROOT / "configs" / "science" / "sweeps" / f"{name}.yaml")
    assert len(expand_and_check(sweep).trials) == count and sweep.seeds == (0, 1, 2)


def test_every_claim_sweep_is_tested():
    found = {p.stem for p in (ROOT / "configs" / "science" / "sweeps").glob("*.yaml")}
    assert found == set(CLAIM_SWEEPS)


def test_a_sweep_file_with_an_unknown_key_is_one_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("spec: {}\ngird: {a: [1]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_sweep_file(path)
    assert str(caught.value).startswith(str(path)) and "gird" in str(caught.value)


@pytest.mark.parametrize(
    "args",
    [
        ["-g", "model.activation="],
        ["-g", "foo.bar=1,2"],
        ["-g", "training.optimizer.learning_rate=loguniform(0,1)", "--random", "2"],
        ["-g", "training.optimizer.learning_rate=loguniform(0.001,0.1)"],
        ["-g", "model.activation=relu,nope"],
    ],
)
def test_bad_axes_refuse_the_sweep_with_one_line_and_no_directory(tiny, tmp_path, args):
    runs = tmp_path / "runs"
    result = invoke("sweep", tiny, *args, "--runs-dir", runs)
    assert result.exit_code == 2, (result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not runs.exists()


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """The issue's check: a 2 x 2 grid with 2 seeds on digits."""
    folder = tmp_path_factory.mktemp("grid")
    spec = folder / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    args = ["-g", "model.activation=relu,elu", "-g", "training.optimizer.learning_rate=0.01,0.001"]
    result = invoke("sweep", spec, *args, "--seeds", "2", "--runs-dir", folder / "runs")
    return result


def test_grid_sweep_completes_every_trial(grid_sweep):
    assert grid_sweep.exit_code == 0, (grid_sweep.output, grid_sweep.exception)
    sweep_dir = Path(grid_sweep.stdout.strip())
    record = read_json(sweep_dir / "sweep.json")
    assert record["status"] == "completed"
    combos = {
        (
            t["params"]["model.activation"],
            t["params"]["training.optimizer.learning_rate"],
            t["params"]["seed"],
        )
        for t in record["trials"]
    }
    assert combos == {(a, lr, s) for a in ("relu", "elu") for lr in (0.01, 0.001) for s in (0, 1)}
    assert len(record["trials"]) == 8
    for trial in record["trials"]:
        assert trial["status"] == "completed" and trial["best"]["value"] is not None
        assert read_json(sweep_dir / trial["run"] / "run.json")["status"] == "completed"
    assert "4 seed groups" in grid_sweep.stderr and "activation=relu, learning_rate=0.01" in grid_sweep.stderr
    assert (sweep_dir / "sweep.yaml").is_file()


def test_compare_of_a_sweep_lists_the_grid_keys_and_seed(grid_sweep):
    sweep_dir = Path(grid_sweep.stdout.strip())
    result = invoke("compare", sweep_dir, "--format", "json")
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    # The activation axis is one key: elu's alpha, which relu has not, folds into its type.
    assert set(comparison["differing_keys"]) == {
        "model.activation",
        "training.optimizer.learning_rate",
        "seed",
    }
    assert {r["params"]["model.activation"]["type"] for r in comparison["runs"]} == {"relu", "elu"}
    assert len(comparison["runs"]) == 8
    assert len(json.loads(invoke("compare", sweep_dir.parent, "--format", "json").stdout)["runs"]) == 8


def test_trials_that_differ_only_in_seed_see_the_same_data(grid_sweep):
    sweep_dir = Path(grid_sweep.stdout.strip())
    seed0, seed1 = sorted(sweep_dir.glob("00[01]-*"))
    assert (seed0 / "preprocessing.json").read_bytes() == (seed1 / "preprocessing.json").read_bytes()
    assert read_metrics(seed0) != read_metrics(seed1)  # but initialization differs


def test_divergence_and_a_crashed_worker_are_recorded_and_the_sweep_goes_on(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLAB_SWEEP_CRASH_TRIAL", "2")
    args = ["-o", "training.optimizer=sgd", "-g", "training.optimizer.learning_rate=0.01,1e5,0.001,0.003"]
    result = invoke("sweep", tiny, *args, "--jobs", "2", "--runs-dir", tmp_path / "runs", "--json", "-q")
    assert result.exit_code == 1, (result.output, result.exception)
    # --quiet: no progress, but a sweep that did not complete still says so
    assert "done" not in result.stderr and "sweep failed" in result.stderr
    record = json.loads(result.stdout)
    statuses = [t["status"] for t in record["trials"]]
    assert statuses == ["completed", "diverged", "failed", "completed"], record["trials"]
    assert "worker process died (signal SIGKILL)" in record["trials"][2]["error"]
    assert record["status"] == "failed"
    assert result.stdout.lstrip().startswith("{")  # nothing of the workers' on stdout


def _running(sweep_dir: Path) -> bool:
    return any(len(read_metrics(run)) >= 2 for run in sweep_dir.glob("0*") if (run / "metrics.csv").exists())


# Epochs of this tiny model take about 0.1 s: enough of them that the kill (seen by the workers
# within 0.5 s) lands in the middle of a trial however fast the machine.
KILLED_SWEEP_EPOCHS = 30


def test_resume_after_the_driver_is_killed(tiny, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [
        "-o",
        f"training.epochs={KILLED_SWEEP_EPOCHS}",
        "-o",
        "training.batch_size=32",
        "-g",
        "model.activation=relu,elu",
        "--seeds",
        "2",
    ]
    driver = subprocess.Popen(
        [sys.executable, "-m", "dnnlab", "sweep", str(tiny), *args, "--jobs", "2", "--runs-dir", str(runs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (list(runs.glob("*")) and _running(next(runs.glob("*")))):
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    sweep_dir = next(runs.glob("*"))
    time.sleep(2)  # the orphaned workers interrupt themselves and save their epoch
    before = {
        t["run"]: read_json(sweep_dir / t["run"] / "run.json")
        for t in read_json(sweep_dir / "sweep.json")["trials"]
        if (sweep_dir / t["run"] / "run.json").exists()
    }
    cut = [run for run, r in before.items() if 0 < r["epochs_done"] < KILLED_SWEEP_EPOCHS]
    assert cut, before

    resumed = subprocess.run(
        [sys.executable, "-m", "dnnlab", "sweep", "--resume", str(sweep_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_json(sweep_dir / "sweep.json")
    assert [t["status"] for t in record["trials"]] == ["completed"] * 4
    for trial in record["trials"]:
        epochs = [row["epoch"] for row in read_metrics(sweep_dir / trial["run"])]
        assert epochs == [str(e) for e in range(KILLED_SWEEP_EPOCHS)]  # each exactly once

    trial = next(t for t in record["trials"] if t["run"] == cut[0])
    overrides = [
        f"training.epochs={KILLED_SWEEP_EPOCHS}",
        "training.batch_size=32",
        *(f"{k}={v}" for k, v in trial["params"].items()),
    ]
    alone = train_run(tiny, tmp_path / "alone", overrides)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(read_metrics(sweep_dir / trial["run"])) == strip(read_metrics(alone))
    # the killed driver's workers saved their epoch and ended: none is left behind
    deadline = time.monotonic() + 30
    while _session_processes(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_processes(driver.pid)


def _session_processes(session: int) -> list[int]:
    """Live processes of a session (the driver's: it was started in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_a_free_worker_takes_another_seed_of_its_configuration_then_one_no_other_worker_is_on():
    """A worker keeps the models it traced, so the local pool hands it the trials it can train
    without tracing: the seeds of its last configuration, then a configuration of its own."""
    from types import SimpleNamespace

    from dnnlab.sweep.executors import ListFeed
    from dnnlab.sweep.worker import preference

    configurations = [("relu", seed) for seed in range(3)] + [("elu", seed) for seed in range(3)]
    feed = ListFeed([{"id": i, "params": {"a": a, "seed": s}} for i, (a, s) in enumerate(configurations)])
    first, second = SimpleNamespace(last=None, trial=None), SimpleNamespace(last=None, trial=None)

    def hand_to(worker) -> int:
        worker.trial = worker.last = feed.next(preference(worker, [first, second]))
        return worker.trial["id"]

    assert hand_to(first) == 0  # relu, seed 0
    assert hand_to(second) == 3  # relu is the first worker's: elu, seed 0
    second.trial = None
    assert hand_to(second) == 4  # elu again (seed 1), though relu seeds come first in the list
    first.trial = None
    assert [hand_to(first), hand_to(first)] == [1, 2]
    assert hand_to(second) == 5
