"""`dnnlab mc-predict` over several runs: one calibration table per seed group, mean ± std.

Five tiny dropout runs on digits (two groups: dropout 0.2 with seeds 1-3, dropout 0.3 with seeds
1-2), trained once per module in process; the aggregated numbers are checked against the
single-run command on each run, the groups against `compare --group-seeds`.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, train_run, write_spec
from test_mc_cli import mc_json, mc_predict
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.errors import WriteError
from dnnlab.results import mc_groups

SPEC = {
    "name": "mc-seeds",
    "seed": 1,
    "data": {"dataset": "digits", "validation": 0.15, "scaling": "standardize"},
    "model": {"hidden": [16], "dropout": {"type": "dropout", "rate": 0.2, "where": "all"}},
    "training": {"epochs": 2, "optimizer": {"type": "nadam", "learning_rate": 0.01}},
}
REGRESSION = {
    "name": "mc-regression",
    "seed": 1,
    "data": {"dataset": "diabetes", "validation": 0.25, "scaling": "standardize"},
    "model": {"hidden": [8], "dropout": {"type": "dropout", "rate": 0.2, "where": "hidden"}},
    "training": {"epochs": 1, "batch_size": 32},
}
GROUPS = {"0.2": (1, 2, 3), "0.3": (1, 2)}
ARGS = ("--samples", 4, "--seed", 3)  # the same sampling for the aggregate and each single run
METHODS = ("deterministic", "mc", "temperature_scaled")

runner = CliRunner()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mc-groups")


@pytest.fixture(scope="module")
def sweep(module_dir) -> Path:
    """A folder of the five runs, as a sweep directory holds its trials."""
    spec = write_spec(module_dir / "specs", SPEC)
    folder = module_dir / "sweep"
    for rate, seeds in GROUPS.items():
        for seed in seeds:
            overrides = [f"seed={seed}", f"model.dropout.rate={rate}"]
            train_run(spec, folder, overrides, f"rate{rate}-seed{seed}")
    return folder


@pytest.fixture(scope="module")
def runs(sweep) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def regression_run(module_dir) -> Path:
    return train_run(
        write_spec(module_dir / "specs", REGRESSION, "regression.yaml"), module_dir / "regression"
    )


@pytest.fixture(scope="module")
def aggregated(sweep) -> dict:
    """`mc-predict SWEEP --json` with ARGS: its JSON and its stderr."""
    result = mc_predict(sweep, *ARGS, "--json")
    assert result.exit_code == 0, result.stderr
    return {"json": json.loads(result.stdout), "stderr": result.stderr}


@pytest.fixture(scope="module")
def singles(runs) -> dict[str, dict]:
    """`mc-predict RUN --json` with ARGS, for each run: its JSON by run path."""
    return {str(run): mc_json(run, *ARGS) for run in runs}


def rate_of(run: str) -> str:
    return re.search(r"rate(0\.\d)", Path(run).name).group(1)


# --- the numbers ----------------------------------------------------------------------------------


def test_each_group_holds_its_runs_single_results_and_their_mean_and_std(aggregated, singles):
    out = aggregated["json"]
    assert (out["samples"], out["seed"], out["data"], out["task"]) == (4, 3, "test", "classification")
    assert out["skipped"] == [] and out["written"] == []
    assert len(out["groups"]) == 2
    for group in out["groups"]:
        members = [run["run"] for run in group["runs"]]
        rate = rate_of(members[0])
        assert {rate_of(run) for run in members} == {rate}
        assert sorted(group["seeds"]) == list(GROUPS[rate])
        assert group["n"] == len(GROUPS[rate]) and group["params"] == {"model.dropout.rate": float(rate)}
        assert group["label"] == f"rate={rate}"
        assert group["runs"] == [singles[run] for run in members]  # each run as `mc-predict RUN` says
        for method in METHODS:
            assert set(group[method]) == {"accuracy", "nll", "brier", "ece"}
            for metric, summary in group[method].items():
                values = [singles[run][method][metric] for run in members]
                assert summary["values"] == values
                assert summary["n"] == len(values)
                assert summary["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
                assert summary["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
        temperatures = [singles[run]["temperature"] for run in members]
        assert group["temperature"]["mean"] == pytest.approx(statistics.fmean(temperatures), rel=1e-12)
        assert group["temperature"]["std"] == pytest.approx(statistics.stdev(temperatures), rel=1e-12)


def test_the_groups_are_those_of_compare_group_seeds(aggregated, sweep):
    result = runner.invoke(app, ["compare", str(sweep), "--group-seeds", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    compared = {frozenset(group["runs"]) for group in json.loads(result.stdout)["groups"]}
    ours = {frozenset(run["run"] for run in group["runs"]) for group in aggregated["json"]["groups"]}
    assert ours == compared


def test_stderr_shows_progress_and_each_groups_table_of_mean_and_std(aggregated):
    stderr = aggregated["stderr"]
    lines = stderr.splitlines()
    progress = [line for line in lines if re.match(r"\[\d/5\] ", line)]
    assert [line[:5] for line in progress] == [f"[{i}/5]" for i in range(1, 6)], stderr
    for group in aggregated["json"]["groups"]:
        n = group["n"]
        assert (
            f"{group['label']}: {n} run(s), seeds {', '.join(map(str, group['seeds']))}; 360 instances"
            in lines
        )
        for metric, summary in group["mc"].items():
            cell = f"{summary['mean']:.4f} ± {summary['std']:.4f}"
            assert any(line.startswith(f"│ {metric} ") and cell in line for line in lines), (cell, stderr)
    assert stderr.count("mean ± std over 3 run(s)") == 1 and stderr.count("mean ± std over 2 run(s)") == 1


def test_quiet_leaves_out_the_progress(sweep, runs):
    result = mc_predict(runs[0], runs[1], "--samples", 2, "-q")
    assert result.exit_code == 0, result.stderr
    assert "[1/2]" not in result.stderr and "mean ± std over 2 run(s)" in result.stderr


# --- one run: today's output ----------------------------------------------------------------------

# `mc-predict RUN --samples 5` as it printed before several runs were accepted, its run path,
# temperature and digits masked (see `masked`).
SINGLE_RUN_STDERR = """\
RUN: ### instances from test, # samples, seed #
sampling dropout layers: all
temperature T, fitted on the validation split (T > #: the deterministic network is overconfident, \
T < #: underconfident)
deterministic vs MC dropout
┏━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┓
┃ metric   ┃ deterministic ┃ MC dropout ┃ temperature-scaled ┃
┡━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━┩
│ accuracy │        #.#### │     #.#### │             #.#### │
│ nll      │        #.#### │     #.#### │             #.#### │
│ brier    │        #.#### │     #.#### │             #.#### │
│ ece      │        #.#### │     #.#### │             #.#### │
└──────────┴───────────────┴────────────┴────────────────────┘
lower is better, accuracy aside
"""


def masked(text: str, run: Path) -> str:
    text = text.replace(str(run), "RUN")
    text = re.sub(r"temperature \S+,", "temperature T,", text)
    return re.sub(r"\d", "#", text)


def test_one_run_prints_what_it_printed_before(runs):
    result = mc_predict(runs[0], "--samples", 5)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert masked(result.stderr, runs[0]) == SINGLE_RUN_STDERR
    numbers = mc_json(runs[0], "--samples", 5)
    for metric in ("accuracy", "nll", "brier", "ece"):
        row = f"│ {metric:<8} │ " + " │ ".join(
            f"{numbers[method][metric]:.4f}".rjust(width) for method, width in zip(METHODS, (13, 10, 18))
        )
        assert row in result.stderr, (row, result.stderr)


# --- what is skipped: one note each -----------------------------------------------------------------


def copy_run(run: Path, folder: Path, edit=None) -> Path:
    copy = folder / run.name
    shutil.copytree(run, copy)
    if edit is not None:
        name, key, value = edit
        data = json.loads((copy / name).read_text(encoding="utf-8"))
        data[key] = value
        (copy / name).write_text(json.dumps(data), encoding="utf-8")
    return copy


def test_runs_that_cannot_be_scored_are_skipped_with_one_note_each(tmp_path, runs, regression_run, singles):
    group_a = [run for run in runs if rate_of(run) == "0.2"]
    kept = [copy_run(run, tmp_path) for run in group_a[:2]]
    interrupted = copy_run(group_a[2], tmp_path, ("run.json", "status", "interrupted"))
    autoencoder = copy_run(runs[-1], tmp_path, ("preprocessing.json", "task", "autoencoder"))
    regression = copy_run(regression_run, tmp_path)
    (tmp_path / "notes").mkdir()  # not a run: compare's note on skipped paths
    result = mc_predict(tmp_path, tmp_path / "notes", *ARGS, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    reasons = {Path(s["run"]): s["reason"] for s in out["skipped"]}
    assert set(reasons) == {interrupted, autoencoder, regression}
    assert "status interrupted, not completed" in reasons[interrupted]
    assert "autoencoder" in reasons[autoencoder]
    assert "a regression run among 2 classification run(s)" in reasons[regression]
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 4, result.stderr
    assert sum(line.startswith(f"note: skipped {path}: ") for path in reasons for line in notes) == 3
    assert any("not run directories" in line and str(tmp_path / "notes") in line for line in notes)
    (group,) = out["groups"]
    assert [Path(run["run"]) for run in group["runs"]] == kept
    values = [singles[str(run)]["mc"]["nll"] for run in group_a[:2]]
    assert group["mc"]["nll"]["values"] == values


def test_a_run_mc_predict_refuses_is_skipped_and_the_others_are_scored(tmp_path, runs):
    kept = copy_run(runs[0], tmp_path)
    damaged = copy_run(runs[1], tmp_path)
    (damaged / "model.keras").write_bytes(b"not a model")
    out = mc_json(tmp_path, "--samples", 2)
    assert [s["run"] for s in out["skipped"]] == [str(damaged)]
    assert [run["run"] for run in out["groups"][0]["runs"]] == [str(kept)]
    assert out["groups"][0]["mc"]["nll"]["std"] is None  # one run: no spread


def test_nothing_left_to_score_is_one_line(tmp_path, runs):
    copy_run(runs[0], tmp_path, ("run.json", "status", "failed"))
    copy_run(runs[1], tmp_path, ("run.json", "status", "running"))
    assert_one_line_error(mc_predict(tmp_path, "--samples", 2), "no run to score", "status failed")


def test_paths_without_runs_are_one_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert_one_line_error(
        mc_predict(tmp_path / "a", tmp_path / "b", "--samples", 2),
        "No run directories found",
        "dnnlab mc-predict runs/*",
    )


# --- files ----------------------------------------------------------------------------------------


def test_out_folder_holds_each_runs_file_as_the_single_run_writes_it(tmp_path, runs):
    chosen = runs[:2]
    calls = []
    result = mc_groups.mc_predict_runs(
        chosen, 4, seed=3, out=tmp_path / "mc", progress=lambda *call: calls.append(call)
    )
    assert calls == [(1, 2, chosen[0]), (2, 2, chosen[1])]
    files = sorted((tmp_path / "mc").iterdir())
    assert files == [tmp_path / "mc" / f"{run.name}.npz" for run in chosen] == result.written
    for run, path in zip(chosen, files):
        single = tmp_path / f"single-{run.name}.npz"
        assert mc_predict(run, *ARGS, "--out", single).exit_code == 0
        assert path.read_bytes() == single.read_bytes()
        with np.load(path) as arrays:
            assert {"mean", "labels", "deterministic", "temperature_scaled"} <= set(arrays.files)


@pytest.mark.parametrize(
    "option, fragments",
    [
        (["--out", "mc.npz"], ["--out", "name a folder"]),
        (["--out", "mc.csv"], ["--out", "name a folder"]),
        (["--plot", "r.png"], ["--plot", "one run's", "report --mc"]),
    ],
)
def test_a_single_file_option_with_several_runs_is_one_line(tmp_path, runs, option, fragments):
    option[1] = str(tmp_path / option[1])
    assert_one_line_error(mc_predict(runs[0], runs[1], "--samples", 2, *option), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_two_runs_of_one_name_in_one_out_folder_are_one_line(tmp_path, runs):
    twin = copy_run(runs[0], tmp_path / "elsewhere")
    out = tmp_path / "mc"
    line = assert_one_line_error(
        mc_predict(runs[0], twin, "--samples", 2, "--out", out), "--out", "both write"
    )
    assert runs[0].name in line and not out.exists()


def test_a_refused_write_stops_the_command_rather_than_skipping_the_run(tmp_path, runs, monkeypatch):
    def refuse(run, *args):
        raise WriteError(f"{tmp_path / 'mc' / run.name}.npz: cannot write (No space left on device)")

    monkeypatch.setattr(mc_groups, "mc_predict", refuse)
    result = mc_predict(runs[0], runs[1], "--samples", 2, "--out", tmp_path / "mc", "-q")  # no progress line
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"{runs[0].name}.npz: cannot write" in line
