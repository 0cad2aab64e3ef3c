"""A sweep directory is untrusted input to `sweep --resume`: nothing outside it is ever written or
removed, nothing in it that dnnlab did not create is removed, and a damaged or edited sweep.json
or sweep.yaml is one line. Most sweep directories here are assembled without training (the
refusals come before any trial starts); one end-to-end resume trains two tiny trials."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.errors import RunDirError
from dnnlab.sweep.definition import build_sweep
from dnnlab.sweep.record import SweepDir, new_record
from dnnlab.sweep.trial_dirs import remove_staging_leftovers, remove_unstarted, trial_path
from dnnlab.sweep.trials import expand_and_check

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "digits", "validation": 0.2},
    "model": {"hidden": [8]},
    "training": {"epochs": 2, "batch_size": 64, "optimizer": "sgd"},
}
LEARNING_RATES = "0.01,1e5"  # trial 000 trains, trial 001 diverges in its first epoch


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def sweep_dir(tmp_path: Path, spec: Path) -> Path:
    """A sweep directory as `dnnlab sweep` leaves it before its first trial starts (a driver
    killed then): sweep.yaml, sweep.json with two pending trials, no trial folder."""
    sweep = build_sweep(spec, axes=[f"training.optimizer.learning_rate={LEARNING_RATES}"])
    expansion = expand_and_check(sweep)
    folder = SweepDir.create(tmp_path / "runs", sweep.name)
    folder.write_definition(sweep)
    folder.write_record(new_record(sweep, expansion.trials, expansion.varying, ["dnnlab", "sweep"]))
    return folder.path


def edit_record(sweep_dir: Path, change) -> bytes:
    """Apply `change` to sweep.json's content; returns the bytes written."""
    path = sweep_dir / "sweep.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    data = json.dumps(record).encode("utf-8")
    path.write_bytes(data)
    return data


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every path under `folder` with its content (a link: where it points)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = "dir"
    return out


def victim(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work", encoding="utf-8")
    return folder


def set_run(value):
    return lambda record: record["trials"][0].__setitem__("run", value)


# --- trial folders outside the sweep directory ----------------------------------------------


@pytest.mark.parametrize(
    "run",
    ["../victim", "", ".", "../../../outside/x", "ABSOLUTE", "000-ok/../../victim", "000/x", None, 7],
    ids=["sibling", "empty", "dot", "far outside", "absolute", "dotdot inside", "nested", "null", "number"],
)
def test_a_trial_run_that_leaves_the_sweep_directory_is_refused(tmp_path, sweep_dir, run):
    sibling = victim(sweep_dir.parent / "victim")
    elsewhere = tmp_path / "elsewhere"
    run = str(elsewhere / "x") if run == "ABSOLUTE" else run
    written = edit_record(sweep_dir, set_run(run))
    before, outside = tree(sweep_dir), tree(sibling)

    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "trials[0].run", "sweep.json")
    assert tree(sibling) == outside  # the sibling's files are all there
    assert tree(sweep_dir) == before and (sweep_dir / "sweep.json").read_bytes() == written
    assert not elsewhere.exists() and not (tmp_path.parent / "outside").exists()


def test_a_trial_folder_that_is_a_symlink_is_refused(tmp_path, sweep_dir):
    outside_run = victim(tmp_path / "someone-elses-run")
    (outside_run / "run.json").write_text('{"status": "interrupted", "epochs_done": 1}', encoding="utf-8")
    (outside_run / "state.json").write_text("{}", encoding="utf-8")
    trial = json.loads((sweep_dir / "sweep.json").read_text())["trials"][0]["run"]
    (sweep_dir / trial).symlink_to(outside_run, target_is_directory=True)
    outside = tree(outside_run)

    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "a symbolic link", trial)
    assert tree(outside_run) == outside
    assert (sweep_dir / trial).is_symlink()


def test_a_folder_in_a_trials_place_that_dnnlab_did_not_make_is_left_alone(sweep_dir):
    trial = json.loads((sweep_dir / "sweep.json").read_text())["trials"][0]["run"]
    mine = victim(sweep_dir / trial)
    before = tree(mine)

    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "not a run dnnlab started", trial)
    assert tree(mine) == before


@pytest.mark.parametrize("name", ["sweep.json", "sweep.yaml", ".lock"])
def test_a_sweep_file_that_is_a_symlink_is_refused(tmp_path, sweep_dir, name):
    target = tmp_path / f"outside-{name.strip('.')}"
    if (sweep_dir / name).exists():
        (sweep_dir / name).rename(target)
    (sweep_dir / name).symlink_to(target)
    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "a symbolic link", name)
    assert not target.exists() or target.stat().st_size > 0  # a lock file was not created there


# --- sweep.json and sweep.yaml as untrusted input ------------------------------------------


def _duplicate(record):
    record["trials"].append(dict(record["trials"][0]))


def _duplicate_id(record):
    record["trials"][1]["id"] = 0


def _id_x_run_null(record):
    record["trials"][0].update(id="x", run=None)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (_duplicate, ["trials[2].id", "listed twice"]),
        (_duplicate_id, ["trials[1]"]),
        (_id_x_run_null, ["trials[0].id", "'x'"]),
        (lambda r: r.update(trials="all"), ["trials", "list"]),
        (lambda r: r.update(trials=[]), ["trials", "0 trials"]),
        (lambda r: r["trials"].__setitem__(0, []), ["trials[0]", "JSON object"]),
        (lambda r: r["trials"][0].update(params=[1]), ["trials[0].params"]),
        (lambda r: r["trials"][0].update(params={"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), ["nested"]),
        (lambda r: r["trials"][0].update(status="done"), ["trials[0].status", "'done'"]),
        (lambda r: r["trials"][0].update(best={"metric": "val_loss", "value": "low"}), ["trials[0].best"]),
        (lambda r: r["trials"][0].update(epochs_done=-1), ["trials[0].epochs_done"]),
        (lambda r: r["trials"][0].update(error=5), ["trials[0].error"]),
        (lambda r: r["trials"][0].update(id=True), ["trials[0].id"]),
        (lambda r: r["trials"][1].update(run="000-learning_rate=1e+05"), ["trials[1].run"]),
        (lambda r: r.update(version=99), ["version", "newer"]),
        (lambda r: r.update(name="../x"), ["name"]),
        (lambda r: r.update(status=None), ["status"]),
        (lambda r: r.update(seeds=[2**40]), ["seeds"]),
        (lambda r: r.pop("started"), ["started", "missing"]),
    ],
    ids=lambda v: v.__name__ if callable(v) and v.__name__ != "<lambda>" else None,
)
def test_a_damaged_sweep_json_is_one_line_and_nothing_changes(sweep_dir, change, fragments):
    written = edit_record(sweep_dir, change)
    before = tree(sweep_dir)
    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "sweep.json", *fragments)
    assert tree(sweep_dir) == before and (sweep_dir / "sweep.json").read_bytes() == written


@pytest.mark.parametrize(
    "content", ["[1, 2", "[]", "\xff", "[" * 100_000 + "]" * 100_000], ids=["cut", "list", "binary", "deep"]
)
def test_a_sweep_json_that_is_not_a_record_is_one_line(sweep_dir, content):
    (sweep_dir / "sweep.json").write_bytes(content.encode("latin-1"))
    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "sweep.json")


def test_a_sweep_yaml_naming_a_spec_file_is_refused(sweep_dir, spec):
    definition = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    definition["spec"] = str(spec)
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    assert_one_line_error(invoke("sweep", "--resume", sweep_dir), "sweep.yaml", "spec inline")


# --- counts and seeds are capped -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "sweep_file", "fragments"),
    [
        ([], {"seeds": 1_000_000_000_000}, ["seeds", "10000"]),
        ([], {"seeds": [0, 2**40]}, ["seeds"]),
        ([], {"random": {"trials": 10**12, "axes": {"model.activation": ["relu", "elu"]}}}, ["trials"]),
        (["--seeds", "1000000000000"], None, ["--seeds", "at most 10,000"]),
        (["--seeds", "0,1099511627776"], None, ["--seeds", "4294967295"]),
        (["--seeds", "²"], None, ["--seeds"]),
        (["-g", "training.batch_size=range(1,1000000000000)"], None, ["range", "999,999,999,999 values"]),
        (["-g", "training.batch_size=range(1,200)", "-g", "seed=range(0,200)"], None, ["39,800 trials"]),
        (["--random", "1000000000000", "-g", "model.activation=relu,elu"], None, ["trials", "10,000"]),
    ],
    ids=[
        "file seeds count",
        "file seed value",
        "file random",
        "seeds count",
        "seed value",
        "seed digit",
        "range",
        "grid",
        "random",
    ],
)
def test_huge_counts_and_seeds_are_one_line_and_no_directory(tmp_path, spec, args, sweep_file, fragments):
    source = spec
    if sweep_file is not None:
        source = tmp_path / "sweep.yaml"
        source.write_text(yaml.safe_dump({"spec": str(spec), **sweep_file}), encoding="utf-8")
    result = invoke("sweep", source, *args, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- what may be removed ----------------------------------------------------------------------


def test_a_start_cut_short_is_removed_and_a_users_folder_is_not(tmp_path):
    sweep = tmp_path / "sweep"
    started = sweep / "000-a"
    started.mkdir(parents=True)
    (started / "run.json").write_text('{"status": "starting"}', encoding="utf-8")
    remove_unstarted(started)
    assert not started.exists()

    mine = victim(sweep / "001-b")
    with pytest.raises(RunDirError, match="not a run dnnlab started"):
        remove_unstarted(mine)
    trained = sweep / "002-c"
    trained.mkdir()
    (trained / "run.json").write_text("{damaged", encoding="utf-8")
    (trained / "state.json").write_text("{}", encoding="utf-8")
    with pytest.raises(RunDirError, match="committed epochs"):
        remove_unstarted(trained)
    assert (mine / "thesis.tex").is_file() and (trained / "state.json").is_file()
    with pytest.raises(RunDirError, match="is not a trial's folder name"):
        trial_path(sweep, "..")


def test_only_unlocked_staging_leftovers_of_the_trial_are_removed(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()

    def staging(name: str) -> Path:
        path = sweep / name
        path.mkdir()
        (path / ".lock").touch()
        (path / "run.json").write_text("{}", encoding="utf-8")
        return path

    left = staging(".000-a.0123456789ab.starting")
    held = staging(".000-a.ba9876543210.starting")
    other_trial = staging(".001-b.0123456789ab.starting")
    not_ours = staging(".000-a.notrandomhex.starting")
    (sweep / ".000-a.aaaaaaaaaaaa.starting").symlink_to(victim(tmp_path / "mine"))
    fd = os.open(held / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a start in progress
    try:
        assert remove_staging_leftovers(sweep, ["000-a"]) == [left]
    finally:
        os.close(fd)
    assert not left.exists() and held.exists() and other_trial.exists() and not_ours.exists()
    assert (tmp_path / "mine" / "thesis.tex").is_file()


# --- end to end: a resumed sweep starts again what was cut short, records what diverged --------


def test_resume_restarts_a_cut_short_start_and_records_the_divergence(sweep_dir):
    trials = json.loads((sweep_dir / "sweep.json").read_text())["trials"]
    first, second = trials[0]["run"], trials[1]["run"]
    cut = sweep_dir / first  # a start cut short: run.json (status starting) and nothing else
    cut.mkdir()
    (cut / "run.json").write_text(json.dumps({"name": "tiny", "status": "starting"}), encoding="utf-8")
    leftover = sweep_dir / f".{second}.0123456789ab.starting"
    leftover.mkdir()
    (leftover / ".lock").touch()

    result = invoke("sweep", "--resume", sweep_dir, "--jobs", "1", "--json")
    assert result.exit_code == 1, (result.output, result.exception)  # a trial diverged
    record = json.loads(result.stdout)
    assert [t["status"] for t in record["trials"]] == ["completed", "diverged"]
    assert json.loads((cut / "run.json").read_text())["status"] == "completed"
    assert not leftover.exists()
    diverged = record["trials"][1]
    assert diverged["error"].startswith("training diverged in epoch 1: ") and "loss nan" in diverged["error"]
    assert f"{second}: diverged after 0 epoch(s), no best  training diverged in epoch 1" in result.stderr
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    assert saved["trials"][1]["error"] == diverged["error"]
