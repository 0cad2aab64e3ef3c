"""`dnnlab sweep --seeds auto`: seeds added round by round to the configurations not yet separated
from the best, up to a cap; recorded in sweep.json so `--resume` makes the same decisions.

The driver is the real one (run_sweep, resume_sweep); the executor "trains" a trial by writing
the metrics.csv rows of a made-up learning curve (no TensorFlow, milliseconds a trial).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import yaml
from curve_executor import CurveExecutor
from helpers import read_json
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.errors import ConfigError, RunDirError
from dnnlab.sweep import executors
from dnnlab.sweep.definition import build_sweep, read_sweep_file
from dnnlab.sweep.record import SweepDir
from dnnlab.sweep.runner import resume_sweep, run_sweep

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "digits", "validation": 0.2},
    "model": {"hidden": [8]},
    "training": {"epochs": 4, "batch_size": 64},
}
FAR = "model.activation=relu,elu"  # elu's loss is 0.5 higher: told apart with 3 seeds
EQUAL = "training.batch_size=32,64"  # the curve ignores the batch size: never told apart


def made_up_loss(params: dict, epoch: int) -> float:
    """val_loss after `epoch` + 1 epochs: elu 0.5 above relu, plus noise of std 0.05 that differs
    between configurations and seeds (a seed's noise is the same in every run of it)."""
    offset = {"relu": 0.0, "elu": 0.5}[params.get("model.activation", "relu")]
    noise = random.Random(f"{params.get('training.batch_size')}-{params['seed']}").gauss(0, 0.05)
    return 1.0 + offset + noise + 1.0 / (epoch + 1)


@pytest.fixture
def fake(monkeypatch) -> CurveExecutor:
    executor = CurveExecutor(made_up_loss, default_epochs=TINY["training"]["epochs"], marks_runs=True)
    monkeypatch.setattr(executors, "get", lambda name: executor)
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # sweep.json's: speed only
    return executor


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


def sweep(tiny: Path, runs: Path, axis: str, seeds: str = "auto"):
    return run_sweep(build_sweep(tiny, axes=[axis], seeds=seeds, jobs=1), runs, ["test"], progress=False)


def trials_of(result) -> list[tuple]:
    """What the sweep ran: each trial's id, folder, parameters, status and best value."""
    return [(t.id, t.run, t.params, t.status, t.best["value"]) for t in result.record.trials]


def seeds_by_group(result, key: str) -> dict:
    found: dict = {}
    for t in result.record.trials:
        found.setdefault(t.params[key], []).append(t.params["seed"])
    return found


# --- the grammar ---------------------------------------------------------------------------


def test_seeds_auto_and_its_cap_on_the_command_line_and_in_a_sweep_file(tmp_path, tiny):
    assert build_sweep(tiny, axes=[FAR], seeds="auto").auto_seeds == 10
    built = build_sweep(tiny, axes=[FAR], seeds="auto:6")
    assert (built.auto_seeds, built.seeds) == (6, None)
    assert build_sweep(tiny, axes=[FAR], seeds="4").auto_seeds is None
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"spec": "tiny.yaml", "grid": {"model.activation": ["relu", "elu"]},
                                    "seeds": "auto:5"}), encoding="utf-8")  # fmt: skip
    read = read_sweep_file(path)
    assert read.auto_seeds == 5
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(read.to_dict(), sort_keys=False), encoding="utf-8")
    assert read_sweep_file(again) == read  # sweep.yaml keeps it for --resume
    assert build_sweep(path, seeds="3").auto_seeds is None  # the command line replaces the file's


@pytest.mark.parametrize("value", ["auto:1", "auto:x", "auto:2", "auto:101", "auto:", "auto:-3", "automatic"])
def test_bad_auto_seeds_are_one_line_exit_2_and_nothing_written(tmp_path, tiny, fake, value):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["sweep", str(tiny), "-g", FAR, "--seeds", value, "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--seeds" in lines[0], result.output
    assert not runs.exists()


def test_bad_auto_seeds_in_a_sweep_file_name_the_file(tmp_path, tiny):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"spec": "tiny.yaml", "seeds": "auto:1"}), encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"sweep.yaml: seeds: 'auto:1': expected auto or auto:MAX, MAX .* 3\.\.100"
    ):
        read_sweep_file(path)


def test_auto_seeds_belong_to_a_grid_or_random_draws(tiny):
    with pytest.raises(ConfigError, match="--seeds auto adds seeds to a grid or random draws"):
        build_sweep(tiny, axes=["training.optimizer.learning_rate=loguniform(1e-4,1e-1)"], seeds="auto",
                    search="tpe", trials=3)  # fmt: skip


def test_the_cap_counts_against_the_trial_limit(tiny):
    from dnnlab.sweep.trials import trial_count

    assert trial_count(build_sweep(tiny, axes=[FAR, EQUAL], seeds="auto:7")) == 4 * 7


# --- the rounds -----------------------------------------------------------------------------


def test_configurations_far_apart_are_separated_after_the_first_round(tmp_path, tiny, fake):
    result = sweep(tiny, tmp_path / "runs", FAR)
    assert result.record.status == "completed"
    assert seeds_by_group(result, "model.activation") == {"relu": [0, 1, 2], "elu": [0, 1, 2]}
    saved = read_json(result.path / "sweep.json")["auto_seeds"]
    assert saved == {
        "max": 10,
        "rounds": [{"seeds": [0, 1, 2], "unseparated": []}],
        "stop": "separated",
        "unseparated": [],
    }


def test_equal_configurations_get_seeds_up_to_the_cap_and_stay_within_noise(tmp_path, tiny, fake, capsys):
    result = run_sweep(build_sweep(tiny, axes=[EQUAL], seeds="auto:8", jobs=1), tmp_path / "runs", ["test"])
    assert result.record.status == "completed"
    assert seeds_by_group(result, "training.batch_size") == {32: list(range(8)), 64: list(range(8))}
    saved = read_json(result.path / "sweep.json")["auto_seeds"]
    assert [r["seeds"] for r in saved["rounds"]] == [[0, 1, 2], [3, 4], [5, 6], [7]]
    assert all(r["unseparated"] == ["batch_size=64"] for r in saved["rounds"][1:])
    assert (saved["stop"], saved["unseparated"]) == ("cap", ["batch_size=64"])
    said = capsys.readouterr().err
    assert "auto seeds: batch_size=64: within noise of the best at the cap of 8 seeds" in said
    # the trials of each round are ordinary trials: ids in order, one run folder each
    assert [t.id for t in result.record.trials] == list(range(16))
    assert all((result.path / t.run / "metrics.csv").is_file() for t in result.record.trials)
    assert result.record.trials[6].run == "006-batch_size=32-seed=3"


def test_one_far_and_two_equal_configurations_grow_only_the_unseparated(tmp_path, tiny, fake):
    result = sweep(tiny, tmp_path / "runs", "model.activation=relu,elu", seeds="auto:5")
    assert len(result.record.trials) == 6  # control: separated at once
    both = run_sweep(build_sweep(tiny, axes=[FAR, EQUAL], seeds="auto:5", jobs=1), tmp_path / "r2", ["t"],
                     progress=False)  # fmt: skip
    counts = {}
    for t in both.record.trials:
        key = (t.params["model.activation"], t.params["training.batch_size"])
        counts[key] = counts.get(key, 0) + 1
    # the two relu configurations are not told apart: they (the best among them) grow to the cap;
    # the elu ones are worse after the first round and keep their 3 seeds
    assert counts == {("relu", 32): 5, ("relu", 64): 5, ("elu", 32): 3, ("elu", 64): 3}


# --- resume -----------------------------------------------------------------------------------


class Killed(BaseException):
    """The driver's death (SIGKILL): nothing after it reaches the disk."""


@pytest.fixture
def killer(monkeypatch):
    """kill(n): the driver dies just before its n-th write of sweep.json; later writes are lost."""
    state = {"left": None, "dead": False}
    write = SweepDir.write_record

    def write_record(self, record):
        if state["dead"]:
            return  # the runner's `finally` in a dead driver
        if state["left"] is not None:
            state["left"] -= 1
            if state["left"] == 0:
                state["dead"] = True
                raise Killed
        write(self, record)

    monkeypatch.setattr(SweepDir, "write_record", write_record)

    def kill(n):
        state.update(left=n, dead=False)

    kill.revive = lambda: state.update(left=None, dead=False)
    return kill


# 8 seeds for 2 equal configurations: 16 trials, 2 writes each, the first record and the last: 34.
@pytest.mark.parametrize("kill_at", [pytest.param(n, marks=[] if n % 3 == 2 else [pytest.mark.slow])
                                     for n in range(2, 35)])  # fmt: skip
def test_a_driver_killed_at_any_write_resumes_to_the_same_trials(tmp_path, tiny, fake, killer, kill_at):
    whole = sweep(tiny, tmp_path / "whole", EQUAL, seeds="auto:8")
    fake.trained.clear()
    killer(kill_at)
    with pytest.raises(Killed):
        sweep(tiny, tmp_path / "killed", EQUAL, seeds="auto:8")
    killer.revive()
    (found,) = (tmp_path / "killed").glob("*/sweep.json")
    resumed = resume_sweep(found.parent, ["test"], progress=False)
    assert trials_of(resumed) == trials_of(whole)  # as if it had never been killed
    assert resumed.record.auto_seeds == whole.record.auto_seeds
    assert resumed.record.status == "completed"
    for run, epochs in fake.trained.items():
        assert epochs == list(range(len(epochs))), run  # every epoch trained once


def test_a_stop_between_rounds_resumes_into_the_next_round(tmp_path, tiny, fake):
    whole = sweep(tiny, tmp_path / "whole", EQUAL, seeds="auto:5")
    killed = sweep(tiny, tmp_path / "killed", EQUAL, seeds="auto:5")
    # as a driver stopped after the first round's last result, before it decided the next round
    data = read_json(killed.path / "sweep.json")
    data["trials"] = data["trials"][:6]
    data["auto_seeds"].update(rounds=data["auto_seeds"]["rounds"][:1], stop=None, unseparated=[])
    data["status"] = "interrupted"
    (killed.path / "sweep.json").write_text(json.dumps(data), encoding="utf-8")
    for trial in killed.record.trials[6:]:  # the next round had not started
        shutil.rmtree(killed.path / trial.run)
    fake.trained.clear()
    resumed = resume_sweep(killed.path, ["test"], progress=False)
    assert trials_of(resumed) == trials_of(whole)
    assert resumed.record.auto_seeds == whole.record.auto_seeds
    assert all(int(Path(run).name.split("-")[0]) >= 6 for run in fake.trained)  # the first round is not rerun


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"max": 2}, "auto_seeds.max: expected 3..100 seeds; received 2"),
        ({"max": True}, "auto_seeds.max: expected 3..100 seeds"),
        ({"rounds": []}, "auto_seeds.rounds: 0 rounds"),
        ({"rounds": [{"seeds": [-1], "unseparated": []}]}, "auto_seeds.rounds[0].seeds"),
        ({"rounds": [{"seeds": [0], "unseparated": [3]}]}, "auto_seeds.rounds[0].unseparated"),
        ({"rounds": "all"}, "auto_seeds.rounds: expected a list"),
        ({"stop": "bored"}, "auto_seeds.stop: expected null or one of separated, cap"),
        ({"max": 7}, "auto_seeds: 7 where sweep.yaml's seeds: give auto_seeds.max 5"),
    ],
)
def test_a_damaged_auto_seeds_record_is_one_line(tmp_path, tiny, fake, change, says):
    done = sweep(tiny, tmp_path / "runs", EQUAL, seeds="auto:5")
    data = read_json(done.path / "sweep.json")
    data["auto_seeds"].update(change)
    data["status"] = "interrupted"
    (done.path / "sweep.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RunDirError) as caught:
        resume_sweep(done.path, ["test"], progress=False)
    assert says in str(caught.value) and "\n" not in str(caught.value)
