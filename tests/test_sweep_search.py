"""`dnnlab sweep` with a search (Optuna): the search file and options, the search space, ASHA's
rungs, and the driver's decisions, told to the study and recorded in sweep.json.

Most tests drive the real driver (run_sweep, resume_sweep) with an executor that "trains" a
trial by writing the metrics.csv rows a made-up learning curve gives (no TensorFlow, a few
milliseconds a trial); the last ones train tiny digits models on the real workers and check that
a paused and promoted run is the run trained in one go, bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from curve_executor import CurveExecutor
from helpers import read_json, read_metrics, train_run
from typer.testing import CliRunner

from dnnlab.errors import ConfigError, RunDirError
from dnnlab.sweep import executors
from dnnlab.sweep.definition import build_sweep, read_sweep_file
from dnnlab.sweep.rungs import Config, bracket_count, ladder, promotable
from dnnlab.sweep.runner import resume_sweep, run_sweep

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "digits", "validation": 0.2},
    "model": {"hidden": [8]},
    "training": {"epochs": 9, "batch_size": 64},
}
LR = "training.optimizer.learning_rate=loguniform(1e-4,1e-1)"
ACTIVATION = "model.activation=relu,elu,selu"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


# --- a made-up learning curve, "trained" by an executor of the test ---------------------------


def made_up_loss(params: dict, epoch: int) -> float:
    """val_loss after `epoch` + 1 epochs: falls with epochs, best near lr 0.01; relu does best.
    Seeds shift it a little, so the mean over seeds is what the study must be told."""
    lr = params.get("training.optimizer.learning_rate", 0.01)
    offset = {"relu": 0.0, "elu": 0.1, "selu": 0.2}[params.get("model.activation", "relu")]
    return (math.log10(lr) + 2) ** 2 + offset + 1.0 / (epoch + 1) + 0.01 * params["seed"]


@pytest.fixture
def fake(monkeypatch) -> CurveExecutor:
    executor = CurveExecutor(made_up_loss, default_epochs=9)
    monkeypatch.setattr(executors, "get", lambda name: executor)
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # the journal's and sweep.json's: speed only
    return executor


def search(tiny: Path, runs: Path, **options):
    """A search of the made-up curve: learning rate and activation, one worker, quiet. `startup`,
    `seed`, `eta` and `min_epochs` are the sweep file's `search:` keys."""
    options = {"search": "tpe", "trials": 6, "jobs": 1, **options}
    axes = options.pop("axes", [LR, ACTIVATION])
    settings = {key: options.pop(key) for key in ("startup", "seed", "eta", "min_epochs") if key in options}
    sweep = build_sweep(tiny, axes=axes, **options)
    sweep = replace(sweep, search=replace(sweep.search, **settings))
    return run_sweep(sweep, runs, ["test"], progress=False)


def outcome(result) -> list[tuple]:
    """What a search decided: each configuration's parameters, status, rungs and value."""
    return [(c.params, c.status, c.rungs, c.value, c.number) for c in result.record.configs]


def study_trials(sweep_dir: Path) -> list:
    from dnnlab.sweep.search import STUDY_NAME

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep_dir / "study.journal"))
    )
    return optuna.load_study(study_name=STUDY_NAME, storage=storage).get_trials()


# --- the search file and options --------------------------------------------------------------


def test_a_search_file_is_read_and_written_back_whole(tmp_path, tiny):
    path = tmp_path / "search.yaml"
    section = {
        "sampler": "cmaes",
        "pruner": "asha",
        "trials": 20,
        "metric": "val_accuracy",
        "timeout": 600,
        "seed": 4,
        "eta": 2,
        "axes": {"training.optimizer.learning_rate": "loguniform(1e-4,1e-1)", "model.hidden": [[8], [4, 4]]},
    }
    text = yaml.safe_dump({"spec": "tiny.yaml", "search": section, "seeds": 2}, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    sweep = read_sweep_file(path)
    assert (sweep.search.sampler, sweep.search.pruner, sweep.search.trials) == ("cmaes", "asha", 20)
    assert (sweep.search.metric, sweep.search.goal, sweep.search.eta) == ("val_accuracy", None, 2)
    assert [a.key for a in sweep.axes] == ["training.optimizer.learning_rate", "model.hidden"]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False), encoding="utf-8")
    assert read_sweep_file(again) == sweep  # sweep.yaml is all --resume needs
    # command-line options replace the file's
    changed = build_sweep(path, search="random", trials=5, prune="median", goal="maximize")
    assert (changed.search.sampler, changed.search.trials, changed.search.pruner) == ("random", 5, "median")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"trials": 5}, "--trials belongs to a search"),
        ({"prune": "asha"}, "--prune belongs to a search"),
        ({"search": "bayes", "trials": 5}, "--search bayes: expected one of tpe, cmaes, gp, random"),
        ({"search": "tpe", "trials": 5, "prune": "sha"}, "--prune sha: expected one of none, median"),
        ({"search": "tpe", "trials": 5, "goal": "max"}, "--goal max: expected one of minimize, maximize"),
        ({"search": "tpe", "trials": 5, "random_trials": 3}, "--random N draws trials blindly"),
        ({"search": "tpe"}, "a search needs to know when to stop: --trials N"),
        ({"search": "tpe", "trials": 0}, "--trials 0: expected a positive number"),
    ],
)
def test_search_options_refused_in_one_line(tiny, options, says):
    with pytest.raises(ConfigError) as caught:
        build_sweep(tiny, axes=[LR], **options)
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"metric": "val_acc"}, "--metric val_acc: the trials do not log it; expected one of loss"),
        ({"axes": []}, "add at least one -g KEY=AXIS"),
        ({"axes": ["model.activation=relu,nope"]}, "-g model.activation=relu,nope"),
        ({"axes": ["training.batch_size=randint(0,8)"]}, "-g training.batch_size=randint(0,8)"),
    ],
)
def test_a_bad_search_writes_nothing(tiny, tmp_path, fake, options, says):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        search(tiny, runs, **options)
    assert not runs.exists() and not fake.order


def test_without_optuna_a_search_is_one_line_exit_2_and_no_directory(tmp_path, tiny, monkeypatch):
    from dnnlab.cli.main import app

    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` fails as if not installed
    path = tmp_path / "search.yaml"
    path.write_text(
        yaml.safe_dump(
            {"spec": "tiny.yaml", "search": {"trials": 3, "axes": {"model.activation": "relu,elu"}}}
        ),
        encoding="utf-8",
    )
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(runs)])
    assert result.exit_code == 2, (result.output, result.exception)
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith("--search tpe: Optuna is not installed; pip install 'dnnlab[search]'"), line
    assert not runs.exists()


def test_the_example_search_file_is_valid():
    from dnnlab.data.checked_spec import check_spec_mapping
    from dnnlab.sweep.search import check_axes, plan

    sweep = read_sweep_file(ROOT / "configs" / "sweeps" / "quickstart_search.yaml")
    base = check_spec_mapping(sweep.spec, sweep.override_texts(), "example")
    resolved = plan(sweep, base)
    check_axes(sweep)
    assert (resolved.metric, resolved.goal, resolved.max_epochs) == ("val_loss", "minimize", 27)
    assert ladder(sweep.search.min_epochs, sweep.search.eta, resolved.max_epochs) == [1, 3, 9, 27]


# --- the search space and the rungs -----------------------------------------------------------


def test_axes_become_optuna_distributions_and_values_come_back(tiny):
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.sweep.search import plan

    axes = [
        "training.optimizer.learning_rate=loguniform(1e-4,1e-1)",
        "model.dropout.rate=uniform(0,0.5)",
        "training.batch_size=randint(16,65)",
        "model.hidden=[64,32],[128]",
        "model.activation=choice(relu,elu,selu)",
        "training.epochs=range(2,11,4)",
    ]
    sweep = build_sweep(tiny, axes=axes, search="tpe", trials=3)
    resolved = plan(sweep, check_spec(tiny))
    space = resolved.space()
    dist = optuna.distributions
    assert space["training.optimizer.learning_rate"] == dist.FloatDistribution(1e-4, 1e-1, log=True)
    assert space["model.dropout.rate"] == dist.FloatDistribution(0, 0.5)
    assert space["training.batch_size"] == dist.IntDistribution(16, 64)  # randint(a,b): a <= n < b
    assert space["model.hidden"] == dist.CategoricalDistribution(["[64, 32]", "[128]"])
    assert space["model.activation"] == dist.CategoricalDistribution(["relu", "elu", "selu"])
    assert space["training.epochs"] == dist.IntDistribution(2, 10, step=4)
    params = {"model.hidden": "[64, 32]", "model.activation": "elu", "training.epochs": 6}
    params.update({k: 0.5 for k in ("training.optimizer.learning_rate", "model.dropout.rate")})
    params["training.batch_size"] = 16
    values = resolved.decode(params)
    assert values["model.hidden"] == [64, 32] and values["training.epochs"] == 6
    assert resolved.encode(values) == params
    assert (resolved.metric, resolved.goal) == ("val_loss", "minimize")  # the spec's monitor, a loss


def test_the_goal_follows_the_metric(tiny):
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.sweep.search import plan

    sweep = build_sweep(tiny, axes=[LR], search="tpe", trials=3, metric="val_accuracy")
    checked = check_spec(tiny, ["training.metrics=[accuracy]"])
    assert plan(sweep, checked).goal == "maximize"


def test_rungs_grow_by_eta_and_end_at_the_full_epochs():
    assert ladder(1, 3, 9) == [1, 3, 9]
    assert ladder(1, 3, 10) == [1, 3, 9, 10]
    assert ladder(1, 3, 9, bracket=1) == [3, 9] and ladder(1, 3, 9, bracket=2) == [9]
    assert ladder(2, 2, 9) == [2, 4, 8, 9] and ladder(5, 3, 3) == [3]
    assert bracket_count(1, 3, 9) == 3


def test_asha_promotes_the_top_third_of_a_rung_highest_rung_first():
    def paused(id, epochs, **values):
        rungs = [{"epochs": int(e[1:]), "value": v} for e, v in values.items()]
        return Config(id, {}, id, 9, status="paused", epochs=epochs, rungs=rungs)

    configs = [paused(i, 1, e1=v) for i, v in enumerate([0.5, 0.2, 0.9, 0.4, 0.3])]
    assert [c.id for c in promotable(configs, 3, "minimize")] == [1]  # 5 // 3 = 1 goes on
    configs.append(paused(5, 1, e1=0.1))  # 6 // 3 = 2
    assert [c.id for c in promotable(configs, 3, "minimize")] == [5, 1]
    assert [c.id for c in promotable(configs, 3, "maximize")] == [2, 0]
    configs[1] = paused(1, 3, e1=0.2, e3=0.15)  # promoted once: alone at rung 3, 1 // 3 = 0
    assert [c.id for c in promotable(configs, 3, "minimize")] == [5]
    for extra in (6, 7):
        configs.append(paused(extra, 3, e1=0.05, e3=0.3))
    assert [c.id for c in promotable(configs, 3, "minimize")][0] == 1  # rung 3 before rung 1


# --- the driver, on the made-up curve ---------------------------------------------------------


def test_the_same_seed_suggests_the_same_trials_in_the_same_order(tiny, tmp_path, fake):
    first = search(tiny, tmp_path / "a", startup=2)
    again = search(tiny, tmp_path / "b", startup=2)
    assert outcome(first) == outcome(again)
    assert len({repr(c.params) for c in first.record.configs}) == 6
    assert outcome(search(tiny, tmp_path / "c", startup=2, seed=1)) != outcome(first)


def test_a_search_records_its_trials_runs_and_study(tiny, tmp_path, fake):
    result = search(tiny, tmp_path / "runs", trials=4, seeds="2")
    record = read_json(result.path / "sweep.json")
    assert record["mode"] == "search" and record["status"] == "completed"
    assert record["search"]["metric"] == "val_loss" and record["search"]["goal"] == "minimize"
    assert record["search"]["study"] == "study.journal"
    assert len(record["configs"]) == 4 and len(record["trials"]) == 8  # two seeds each
    trials = study_trials(result.path)
    for config in record["configs"]:
        runs = [t for t in record["trials"] if t["config"] == config["id"]]
        assert [t["params"]["seed"] for t in runs] == [0, 1]
        assert all(t["status"] == "completed" and t["epochs"] == 9 for t in runs)
        assert config["status"] == "completed"
        # the study is told the mean over seeds of each run's best
        best = [min(made_up_loss(t["params"], e) for e in range(9)) for t in runs]
        assert config["value"] == pytest.approx(sum(best) / 2)
        told = trials[config["number"]]
        assert told.state.name == "COMPLETE" and told.value == pytest.approx(config["value"])
        assert told.user_attrs["dnnlab_config"] == config["id"]
        assert sorted(told.intermediate_values) == list(range(1, 10))
        assert all((result.path / t["run"]).is_dir() for t in runs)


def test_asha_pauses_the_many_and_promotes_the_few(tiny, tmp_path, fake):
    result = search(tiny, tmp_path / "runs", trials=9, prune="asha", startup=3)
    configs = result.record.configs
    assert result.record.status == "completed" and result.exit_code == 0
    statuses = [c.status for c in configs]
    assert statuses.count("completed") >= 1 and statuses.count("paused") >= 5
    for config in configs:
        reached = [r["epochs"] for r in config.rungs]
        assert reached == [1, 3, 9][: len(reached)]
        runs = [t for t in result.record.trials if t.config == config.id]
        assert all(t.status == config.status for t in runs) and all(t.epochs == reached[-1] for t in runs)
    # ASHA's rule: a paused configuration goes on once it is in the top third of its rung, so
    # at the end the top third of rung 1 went on (and maybe one that ranked there earlier)
    at_one = sorted(configs, key=lambda c: c.rungs[0]["value"])
    assert {c.id for c in at_one[: 9 // 3]} <= {c.id for c in configs if len(c.rungs) > 1}
    assert promotable(configs, 3, "minimize") == []
    # a promotion goes on from where the run paused: every epoch trained once
    assert all(epochs == list(range(len(epochs))) for epochs in fake.trained.values())
    # the study: paused configurations are PRUNED at their rung; the promoted ones got more records
    trials = study_trials(result.path)
    for config in configs:
        mine = [t for t in trials if t.user_attrs.get("dnnlab_config") == config.id]
        reached = config.rungs[-1]["epochs"]
        last = max(mine, key=lambda t: t.number)
        assert max(last.intermediate_values) == reached
        assert last.state.name == ("COMPLETE" if config.status == "completed" else "PRUNED")


def test_hyperband_runs_brackets_with_later_first_rungs(tiny, tmp_path, fake):
    result = search(tiny, tmp_path / "runs", trials=6, prune="hyperband")
    firsts = [(c.bracket, c.rungs[0]["epochs"]) for c in result.record.configs]
    assert firsts == [(0, 1), (1, 3), (2, 9), (0, 1), (1, 3), (2, 9)]
    assert all(c.status == "completed" for c in result.record.configs if c.bracket == 2)


def test_median_pruning_stops_a_configuration_for_good(tiny, tmp_path, fake):
    result = search(tiny, tmp_path / "runs", trials=8, prune="median", startup=2)
    configs = result.record.configs
    pruned = [c for c in configs if c.status == "pruned"]
    assert pruned and all(c.status in ("completed", "pruned") for c in configs)
    for config in pruned:
        runs = [t for t in result.record.trials if t.config == config.id]
        assert all(t.status == "pruned" for t in runs)
        assert runs[0].epochs_done < 9  # it stopped at a rung and never trained again
    trials = study_trials(result.path)
    assert {trials[c.number].state.name for c in pruned} == {"PRUNED"}
    assert len(trials) == 8  # median pruning never pauses: one study trial per configuration


def test_resume_with_more_trials_continues_the_study_and_may_promote_paused_ones(tiny, tmp_path, fake):
    whole = search(tiny, tmp_path / "whole", trials=9, prune="asha", startup=3)
    part = search(tiny, tmp_path / "part", trials=4, prune="asha", startup=3)
    paused = {c.id for c in part.record.configs if c.status == "paused"}
    before = dict(fake.trained)
    resumed = resume_sweep(part.path, ["test"], trials=9, progress=False)
    assert outcome(resumed) == outcome(whole)  # as if it had been asked for 9 from the start
    promoted = {c.id for c in resumed.record.configs if c.id in paused and len(c.rungs) > 1}
    assert promoted  # a configuration paused by the first run went on after the resume
    for run, epochs in fake.trained.items():
        assert epochs == list(range(len(epochs))), run  # no epoch of any run trained twice
    assert all(before[run] == fake.trained[run][: len(before[run])] for run in before)
    assert read_sweep_file(part.path / "sweep.yaml").search.trials == 9  # the new total is kept
    again = resume_sweep(part.path, ["test"], progress=False)  # nothing left: nothing trained
    assert outcome(again) == outcome(whole) and len(fake.order) == len(set(fake.order))


# The GP sampler imports torch and fits a Gaussian process per suggestion: about 10 s here.
GP = pytest.param(
    "gp", marks=[pytest.mark.slow, pytest.mark.skipif(not _has("torch"), reason="the GP sampler needs torch")]
)


@pytest.mark.parametrize("sampler", ["random", "cmaes", GP])
def test_every_sampler_is_seeded(tiny, tmp_path, fake, sampler):
    axes = [LR, "training.batch_size=randint(16,65)"]  # CMA-ES models numbers only
    first = search(tiny, tmp_path / "a", search=sampler, axes=axes, startup=2)
    again = search(tiny, tmp_path / "b", search=sampler, axes=axes, startup=2)
    assert outcome(first) == outcome(again) and first.record.status == "completed"
    assert len({repr(c.params) for c in first.record.configs}) == 6


def test_gp_without_torch_is_one_line(tiny, tmp_path, fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConfigError, match=r"--search gp: .* needs PyTorch.*pip install torch"):
        search(tiny, tmp_path / "runs", search="gp")
    assert not (tmp_path / "runs").exists()


def test_the_timeout_stops_new_configurations(tiny, tmp_path, fake, monkeypatch):
    from dnnlab.sweep import search as searching

    clock = iter(range(0, 10_000, 10))  # ten seconds pass at every look at the clock
    monkeypatch.setattr(searching.time, "monotonic", lambda: next(clock))
    result = search(tiny, tmp_path / "runs", trials=None, timeout=35)
    assert 1 <= len(result.record.configs) < 6 and result.record.status == "completed"
    assert result.record.search["trials"] is None and result.record.search["timeout"] == 35


def test_a_diverged_configuration_is_a_result_of_the_search(tiny, tmp_path, fake, monkeypatch):
    train = fake.train

    def diverging(sweep_dir, trial):
        if trial["params"]["training.optimizer.learning_rate"] > 0.03:
            return {**train(sweep_dir, trial), "status": "diverged", "epochs_done": 0, "error": "nan loss"}
        return train(sweep_dir, trial)

    monkeypatch.setattr(fake, "train", diverging)
    result = search(tiny, tmp_path / "runs", trials=8, prune="asha")
    diverged = [c for c in result.record.configs if c.status == "diverged"]
    assert diverged and result.record.status == "completed" and result.exit_code == 0
    trials = study_trials(result.path)
    assert all(trials[c.number].state.name in ("PRUNED", "FAIL") for c in diverged)
    assert all(c.error == "nan loss" for c in diverged)


def test_a_run_whose_worker_died_fails_the_search_and_resume_completes_it(tiny, tmp_path, fake, monkeypatch):
    train, died = fake.train, []

    def dying(sweep_dir, trial):
        if trial["id"] == 1 and not died:
            died.append(trial["id"])
            return {
                **train(sweep_dir, trial),
                "status": "failed",
                "error": "its worker process died (SIGKILL)",
            }
        return train(sweep_dir, trial)

    monkeypatch.setattr(fake, "train", dying)
    result = search(tiny, tmp_path / "runs", trials=4)
    assert result.record.status == "failed" and result.exit_code == 1
    assert result.record.configs[1].status == "failed"
    assert study_trials(result.path)[result.record.configs[1].number].state.name == "FAIL"
    resumed = resume_sweep(result.path, ["test"], progress=False)
    assert resumed.record.status == "completed"
    config = resumed.record.configs[1]
    assert config.status == "completed" and config.error is None
    told = [t for t in study_trials(result.path) if t.user_attrs.get("dnnlab_config") == 1]
    assert [t.state.name for t in told] == ["FAIL", "COMPLETE"]  # its result added to the study
    assert told[1].params == told[0].params and told[1].value == pytest.approx(config.value)


def test_a_repeated_suggestion_is_not_trained_and_the_study_hears_the_earlier_result(
    tiny, tmp_path, fake, capsys
):
    """Three activations and eight suggestions: TPE repeats itself. A repeat would train the same
    runs again (same overrides, same seeds); it is recorded as a duplicate of the first and the
    study is told that one's value, as Optuna's FAQ does. `--trials` counts every suggestion."""
    result = search(tiny, tmp_path / "runs", trials=8, axes=[ACTIVATION], startup=2)
    assert result.record.status == "completed" and result.exit_code == 0
    configs = result.record.configs
    assert len(configs) == 8  # the budget: suggestions, repeats included
    originals = [c for c in configs if c.duplicate_of is None]
    repeats = [c for c in configs if c.duplicate_of is not None]
    assert repeats and len({repr(c.params) for c in originals}) == len(originals) <= 3
    assert len(result.record.trials) == len(originals) == len(fake.order)  # each trained once
    trials = study_trials(result.path)
    assert len(trials) == 8
    for config in repeats:
        original = configs[config.duplicate_of]
        assert original.duplicate_of is None and original.params == config.params
        assert config.status == "duplicate" and config.value is None and config.rungs == []
        told = trials[config.number]
        assert told.state.name == "COMPLETE" and told.value == original.value
        assert told.user_attrs["dnnlab_config"] == config.id
    from dnnlab.cli.run_commands import render_sweep

    render_sweep(result)  # the summary the CLI prints
    said = f"{len(repeats)} of the 8 suggested configurations repeated an earlier one: not trained again"
    assert said in capsys.readouterr().err
    again = resume_sweep(result.path, ["test"], trials=10, progress=False)  # 10 suggestions in all
    assert len(again.record.configs) == 10 and len(study_trials(result.path)) == 10
    assert len(fake.order) == len(set(fake.order)) == len(again.record.trials)


def test_a_repeat_of_a_paused_configuration_is_pruned_at_its_rung(tiny, tmp_path, fake):
    """Under ASHA the original may be paused at a rung when it is suggested again: the repeat is
    told PRUNED with the original's curve so far (not trained, not a rival at the rung)."""
    result = search(tiny, tmp_path / "runs", trials=8, axes=[ACTIVATION], startup=2, prune="asha")
    configs = result.record.configs
    repeats = [c for c in configs if c.duplicate_of is not None]
    assert repeats and result.record.status == "completed"
    trials = study_trials(result.path)
    for config in repeats:
        told = trials[config.number]
        original = configs[config.duplicate_of]
        assert told.state.name == "PRUNED"
        assert told.value == original.value_at(max(told.intermediate_values))  # its rung's value
    for run, epochs in fake.trained.items():
        assert epochs == list(range(len(epochs))), run  # no epoch trained twice
    assert promotable(configs, 3, "minimize") == []


def test_a_repeat_of_a_configuration_still_training_hears_its_result_once_it_is_judged(
    tiny, tmp_path, fake, monkeypatch
):
    """Two workers: the second suggestion repeats the first while the first trains. The repeat is
    not trained; the study hears the first's value when it completes, not a guess before."""
    train = fake.train

    def two_at_once(sweep_dir, trials, jobs, threads, address, on_trial_event):
        feed, running = executors.as_feed(trials), []
        while True:
            while len(running) < 2 and feed.ready():
                trial = feed.next()
                if trial is None:
                    break
                on_trial_event("started", trial, None)
                running.append(trial)
            if not running:
                break
            trial = running.pop(0)
            on_trial_event("finished", trial, train(Path(sweep_dir), trial))

    monkeypatch.setattr(executors, "get", lambda name: two_at_once)
    result = search(tiny, tmp_path / "runs", trials=6, axes=[ACTIVATION], startup=2, jobs=2)
    first, second = result.record.configs[:2]
    assert (second.status, second.duplicate_of) == ("duplicate", 0)  # asked while the first trained
    told = study_trials(result.path)[second.number]
    assert first.status == "completed" and told.state.name == "COMPLETE" and told.value == first.value
    assert len(fake.order) == len(set(fake.order)) == len(result.record.trials)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda configs: configs[1].update(duplicate_of=1), "configs[1].duplicate_of"),
        (lambda configs: configs[0].update(duplicate_of=None, status="duplicate"), "configs[0].duplicate_of"),
        (lambda configs: configs[0].update(duplicate_of=0), "configs[0].duplicate_of"),
    ],
)
def test_a_damaged_duplicate_is_one_line(tiny, tmp_path, fake, change, says):
    result = search(tiny, tmp_path / "runs", trials=4, axes=[ACTIVATION], startup=2)
    path = result.path / "sweep.json"
    record = read_json(path)
    assert record["configs"][1]["duplicate_of"] == 0  # relu again: a repeat of the first
    change(record["configs"])
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(RunDirError, match=re.escape(says)) as caught:
        resume_sweep(result.path, ["test"], trials=5, progress=False)
    assert "\n" not in str(caught.value)


def test_more_than_one_worker_says_once_that_the_order_may_differ(tiny, tmp_path, fake, capsys):
    sweep = build_sweep(tiny, axes=[LR, ACTIVATION], search="tpe", trials=2, jobs=2)
    run_sweep(sweep, tmp_path / "runs", ["test"])
    assert capsys.readouterr().err.count("the order of results, and so the suggestions, may differ") == 1
    sweep = build_sweep(tiny, axes=[LR, ACTIVATION], search="tpe", trials=2, jobs=1)
    run_sweep(sweep, tmp_path / "runs", ["test"])
    assert "may differ" not in capsys.readouterr().err


def test_a_journal_cut_mid_line_and_a_stale_lock_are_cleared_on_resume(tiny, tmp_path, fake):
    whole = search(tiny, tmp_path / "whole", trials=5)
    part = search(tiny, tmp_path / "part", trials=3)
    journal = part.path / "study.journal"
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code":5,"worker_id":"x","trial_id":3,"param_na')  # a kill mid-write
    (part.path / "study.journal.lock").write_text("", encoding="utf-8")  # held by the killed driver
    resumed = resume_sweep(part.path, ["test"], trials=5, progress=False)
    assert outcome(resumed) == outcome(whole)


def test_a_damaged_journal_is_one_line(tiny, tmp_path, fake):
    part = search(tiny, tmp_path / "part", trials=2)
    journal = part.path / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([lines[0], b"not json\n", *lines[1:]]))
    with pytest.raises(RunDirError, match=r"study.journal: not a readable Optuna journal") as caught:
        resume_sweep(part.path, ["test"], trials=4, progress=False)
    assert "\n" not in str(caught.value)


def test_trials_on_resume_belong_to_a_search(tiny, tmp_path, fake):
    sweep = build_sweep(tiny, axes=["model.activation=relu,elu"], jobs=1)
    result = run_sweep(sweep, tmp_path / "runs", ["test"], progress=False)
    with pytest.raises(ConfigError, match="--trials 5: expected a search"):
        resume_sweep(result.path, ["test"], trials=5)


class Killed(BaseException):
    """The driver dies here: nothing it would write afterwards reaches the disk."""


@pytest.fixture
def killer(monkeypatch):
    """kill(n, kind=None): the driver dies just before its n-th write (of `kind`: "sweep.json" or
    an Optuna journal operation such as "SET_TRIAL_PARAM"; None: any); from then on no write of
    this process reaches the disk, as after a SIGKILL."""
    from optuna.storages.journal import JournalFileBackend

    from dnnlab.sweep.record import SweepDir

    state = {"left": None, "kind": None, "dead": False}
    append, write = JournalFileBackend.append_logs, SweepDir.write_record

    def gate(kind: str):
        if state["dead"]:
            raise Killed
        if state["left"] is not None and state["kind"] in (None, kind):
            state["left"] -= 1
            if state["left"] == 0:
                state["dead"] = True
                raise Killed

    def append_logs(self, logs):
        from optuna.storages.journal._storage import JournalOperation

        gate(JournalOperation(logs[0]["op_code"]).name)
        append(self, logs)

    def write_record(self, record):
        if state["dead"]:
            return  # the runner's `finally` in a dead driver
        gate("sweep.json")
        write(self, record)

    monkeypatch.setattr(JournalFileBackend, "append_logs", append_logs)
    monkeypatch.setattr(SweepDir, "write_record", write_record)

    def kill(n, kind=None):
        state.update(left=n, kind=kind, dead=False)

    def revive():
        state.update(left=None, kind=None, dead=False)

    kill.revive = revive
    return kill


def killed_and_resumed(tiny, tmp_path, killer, n, kind=None):
    """The search of `test_a_driver_killed...`, killed before its n-th write (of `kind`), then
    resumed; None when it died before its sweep directory was whole (nothing to resume)."""
    killer(n, kind)
    runs = tmp_path / "killed"
    try:
        search(tiny, runs, trials=5, prune="asha", startup=2)
    except Killed:
        pass
    else:
        pytest.skip(f"the search makes fewer than {n} writes")
    finally:
        killer.revive()
    found = list(runs.glob("*/sweep.json"))
    if not found:
        return None
    return resume_sweep(found[0].parent, ["test"], progress=False)


def check_nothing_twice(resumed, fake) -> None:
    for run, epochs in fake.trained.items():
        assert epochs == list(range(len(epochs))), run  # every epoch trained once
    numbers = [c.number for c in resumed.record.configs]
    assert len(set(numbers)) == len(numbers) == 5  # no configuration twice, none lost
    mine = [
        t for t in study_trials(resumed.path) if "dnnlab_config" in t.user_attrs and t.state.name != "RUNNING"
    ]
    told = {(t.user_attrs["dnnlab_config"], t.state.name, t.user_attrs["dnnlab_epochs"]) for t in mine}
    assert len(told) == len(mine)  # no result told twice
    assert resumed.record.status == "completed"


# The search makes 67 writes (optuna 5.1): every sixth is a kill point here, every one with -m slow.
KILL_POINTS = [pytest.param(n, marks=[] if n % 6 == 1 else [pytest.mark.slow]) for n in range(1, 71)]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_driver_killed_at_any_write_resumes_to_the_same_search(tiny, tmp_path, fake, killer, kill_at):
    whole = search(tiny, tmp_path / "whole", trials=5, prune="asha", startup=2)
    fake.trained.clear()
    resumed = killed_and_resumed(tiny, tmp_path, killer, kill_at)
    if resumed is None:
        return
    failed = [t for t in study_trials(resumed.path) if t.state.name == "FAIL"]
    if not failed:
        assert outcome(resumed) == outcome(whole)  # as if it had never been killed
    check_nothing_twice(resumed, fake)


def test_a_suggestion_asked_but_not_recorded_is_adopted_under_its_number(tiny, tmp_path, fake, killer):
    whole = search(tiny, tmp_path / "whole", trials=5, prune="asha", startup=2)
    fake.trained.clear()
    # the third suggestion's parameters are in the journal; the driver dies before sweep.json has it
    resumed = killed_and_resumed(tiny, tmp_path, killer, 3, "SET_TRIAL_USER_ATTR")
    assert len(resumed.record.configs) == 5 and resumed.record.configs[2].number == 2
    assert outcome(resumed) == outcome(whole)
    assert not [t for t in study_trials(resumed.path) if t.state.name == "FAIL"]
    check_nothing_twice(resumed, fake)


def test_a_suggestion_cut_while_its_parameters_were_written_is_failed(tiny, tmp_path, fake, killer):
    fake.trained.clear()
    # the second suggestion has one of its two parameters when the driver dies
    resumed = killed_and_resumed(tiny, tmp_path, killer, 4, "SET_TRIAL_PARAM")
    trials = study_trials(resumed.path)
    assert [t.number for t in trials if t.state.name == "FAIL"] == [1]
    assert [c.number for c in resumed.record.configs][:2] == [0, 2]  # asked again, as trial 2
    check_nothing_twice(resumed, fake)


# --- real runs: tiny digits models on the real workers -----------------------------------------


ONE_CYCLE = {
    **TINY,
    "training": {"epochs": 3, "batch_size": 64, "schedule": {"type": "one_cycle", "max_lr": 0.05}},
}


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(run: Path) -> list:
    from dnnlab.model.build import load_model

    return load_model(run / "model.keras").get_weights()


def test_a_paused_and_promoted_run_is_the_run_trained_in_one_go(tmp_path):
    """ASHA on rungs of 1 and 3 epochs under one_cycle (whose cycle spans the spec's epochs): a
    run paused after epoch 1 and promoted goes on from its checkpoint to exactly the run that
    `dnnlab train` trains in one go: every metric of every epoch, the test scores, the weights."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(ONE_CYCLE, sort_keys=False), encoding="utf-8")
    axes = ["training.schedule.max_lr=loguniform(0.005,0.1)", "model.activation=relu,elu"]
    sweep = build_sweep(spec, axes=axes, search="random", trials=3, prune="asha", jobs=1)
    result = run_sweep(sweep, tmp_path / "runs", ["test"], progress=False)
    assert result.record.status == "completed", [t.error for t in result.record.trials]
    statuses = sorted(t.status for t in result.record.trials)
    assert statuses == ["completed", "paused", "paused"]  # 3 // 3 = 1 went on
    paused = next(t for t in result.record.trials if t.status == "paused")
    assert read_json(result.path / paused.run / "run.json")["epochs_done"] == 1
    assert len(read_metrics(result.path / paused.run)) == 1
    (promoted,) = [t for t in result.record.trials if t.status == "completed"]
    assert [r["epochs"] for r in promoted.rungs] == [1, 3] and promoted.epochs == 3
    run = result.path / promoted.run
    alone = train_run(spec, tmp_path / "alone", [f"{k}={v}" for k, v in promoted.params.items()])
    assert without_seconds(read_metrics(run)) == without_seconds(read_metrics(alone))
    assert read_json(run / "run.json")["test"] == read_json(alone / "run.json")["test"]
    for mine, theirs in zip(weights(run), weights(alone), strict=True):
        assert (mine == theirs).all()


def _session_alive(session: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            return True
    return False


@pytest.mark.slow
def test_a_search_whose_driver_is_killed_resumes_to_the_same_search(tmp_path):
    """SIGKILL of the driver mid-search (its workers save their epoch and stop), then `sweep
    --resume`: the search ends as the same search run without a kill ends, with every epoch of
    every run trained once."""
    spec = {**TINY, "training": {"epochs": 9, "batch_size": 32}}
    section = {
        "sampler": "tpe",
        "pruner": "asha",
        "trials": 5,
        "startup": 2,
        "axes": {
            "model.activation": "relu,elu,selu",
            "training.optimizer.learning_rate": "loguniform(1e-3,1e-1)",
        },
    }
    path = tmp_path / "search.yaml"
    path.write_text(
        yaml.safe_dump({"spec": spec, "search": section, "jobs": 1}, sort_keys=False), encoding="utf-8"
    )
    whole = run_sweep(read_sweep_file(path), tmp_path / "whole", ["test"], progress=False)

    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "dnnlab", "sweep", str(path), "--runs-dir", str(runs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(runs.glob("*/0*/metrics.csv"))) < 3:
        time.sleep(0.1)  # the third trial has started: mid-search
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 60
    while _session_alive(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # the orphaned worker saves its epoch and ends
    (sweep_dir,) = runs.glob("*")
    before = read_json(sweep_dir / "sweep.json")
    assert len(before["configs"]) < 5 and before["status"] == "running"  # killed mid-search
    resumed = subprocess.run(
        [sys.executable, "-m", "dnnlab", "sweep", "--resume", str(sweep_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_json(sweep_dir / "sweep.json")
    expected = [(c.params, c.status, c.rungs, c.value) for c in whole.record.configs]
    assert [(c["params"], c["status"], c["rungs"], c["value"]) for c in record["configs"]] == expected
    for trial in record["trials"]:
        epochs = [row["epoch"] for row in read_metrics(sweep_dir / trial["run"])]
        assert epochs == [str(e) for e in range(trial["epochs_done"])]  # each exactly once
