"""`dnnlab diagnose --try-remedies`: the remedies each verdict names as overrides, the tests
against the unchanged spec (not the best group), and a sweep that trains them."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import tiny_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.data.checked_spec import check_spec_mapping
from dnnlab.diagnostics.remedies import Remedy, remedies_for
from dnnlab.results.statistics import BASELINE, BETTER, WORSE, compare_groups

# A deep sigmoid stack with small N(0, 0.05) weights: vanishing gradients at initialization.
VANISHING = tiny_spec(
    model={
        "hidden": [8] * 10,
        "activation": "sigmoid",
        "initializer": {"type": "random_normal", "stddev": 0.05},
    }
)


def _spec(raw, *overrides):
    return check_spec_mapping(raw, list(overrides), "test spec").spec


def test_each_verdict_names_concrete_overrides_the_spec_lacks():
    found = remedies_for(["vanishing_gradients"], _spec(VANISHING))
    assert [r.label for r in found] == [
        "initializer glorot_uniform",
        "relu with he_normal",
        "batch norm",
        "learning rate 0.01 (10x higher)",
    ]
    assert found[1].overrides == ["model.activation={type: relu}", "model.initializer={type: he_normal}"]
    exploding = remedies_for(["exploding_gradients"], _spec(tiny_spec()))
    assert [r.overrides for r in exploding][:2] == [
        ["training.optimizer.clipnorm=1"],
        ["training.optimizer.learning_rate=0.0001"],
    ]
    # relu already has he_normal (the paired default), and clipping already at 1 is not suggested
    clipped = _spec(tiny_spec(), "training.optimizer.clipnorm=0.5")
    assert [r.label for r in remedies_for(["exploding_gradients"], clipped)] == [
        "learning rate 0.0001 (10x lower)"
    ]
    both = remedies_for(["exploding_gradients", "dead_units"], _spec(tiny_spec()))
    lower = next(r for r in both if r.label.startswith("learning rate"))
    assert lower.because == ("exploding_gradients", "dead_units")  # one trial, named by both


def test_a_group_is_judged_against_the_baseline_not_against_the_best():
    groups = {
        "unchanged": {0: 0.50, 1: 0.52, 2: 0.51},
        "big win": {0: 0.80, 1: 0.83, 2: 0.81},
        "small win": {0: 0.60, 1: 0.63, 2: 0.61},
    }
    against_best = {r.name: r.verdict for r in compare_groups(groups, "max")}
    assert against_best["small win"] == WORSE  # worse than the best group...
    results = {r.name: r for r in compare_groups(groups, "max", reference="unchanged")}
    assert results["unchanged"].verdict == BASELINE
    assert results["small win"].verdict == BETTER  # ...but better than the spec it would replace
    assert results["small win"].difference == pytest.approx(0.1033, abs=1e-3)
    assert results["small win"].comparisons == 2  # Holm over the two remedies, not every pair
    assert results["unchanged"].sentence.startswith("unchanged: baseline, mean")


def test_a_remedy_that_diverges_is_worse_and_never_called_a_fix(tmp_path):
    from dnnlab.sweep.remedy_trials import try_remedies

    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        yaml.safe_dump(tiny_spec(training={"optimizer": "sgd"}), sort_keys=False), encoding="utf-8"
    )
    blow_up = Remedy(
        "learning rate 1e+05", {"training.optimizer.learning_rate": 1e5}, ("exploding_gradients",)
    )
    trial = try_remedies(
        spec, [blow_up], tmp_path / "runs", ["test"], seeds="2", epochs=1, jobs=1, progress=False
    )
    assert trial.sweep_dir.parent == tmp_path / "runs" and trial.sweep_dir.name.startswith("tiny-remedies")
    assert len(list(trial.sweep_dir.glob("0*"))) == 4  # 2 groups x 2 seeds, seeds innermost
    record = json.loads((trial.sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    assert [t["status"] for t in record["trials"]] == ["completed", "completed", "diverged", "diverged"]
    baseline, tried = trial.groups
    assert baseline.verdict == BASELINE and baseline.diverged == 0
    assert tried.diverged == 2 and tried.verdict == WORSE
    assert trial.phrase(tried) == "learning rate 1e+05 made it worse (diverged on 2 of 2 seeds)"
    numbers = trial.as_dict()
    assert numbers["groups"][0]["seeds"] == 2 and 0 < numbers["groups"][0]["mean"] <= 1
    assert numbers["metric"] == "val_accuracy" and numbers["against"] == "unchanged"


@pytest.mark.slow
def test_diagnose_try_remedies_reports_each_remedy_against_the_unchanged_spec(tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text(yaml.safe_dump(VANISHING, sort_keys=False), encoding="utf-8")
    runs = tmp_path / "runs"
    args = ["diagnose", str(spec), "--try-remedies", "--seeds", "2", "--epochs", "1", "--runs-dir", str(runs)]
    result = CliRunner().invoke(app, [*args, "--json", "-q"])
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)
    verdict = next(v for v in out["verdicts"] if v["kind"] == "vanishing_gradients")
    assert {r["status"] for r in verdict["remedies"]} == {"tested"}
    groups = out["remedy_trial"]["groups"]
    assert [g["remedy"] for g in groups][0] == "unchanged" and len(groups) == 5
    for remedy, group in zip(verdict["remedies"], groups[1:]):
        assert remedy["verdict"] == group["verdict"] in ("better", "worse", "within noise")
        assert remedy["text"].startswith(remedy["remedy"])
        if group["verdict"] == "worse":
            assert "made it worse" in remedy["text"]
    text = CliRunner().invoke(app, ["diagnose", str(spec)])
    assert "suggested, untested" in text.stdout and "-o training.optimizer.learning_rate=0.01" in text.stdout


def test_diagnose_lists_each_verdicts_remedies_as_suggested_until_tested(tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text(yaml.safe_dump(VANISHING, sort_keys=False), encoding="utf-8")
    out = json.loads(CliRunner().invoke(app, ["diagnose", str(spec), "--json"]).stdout)
    (verdict,) = out["verdicts"]
    assert verdict["kind"] == "vanishing_gradients" and "remedy_trial" not in out
    assert {r["status"] for r in verdict["remedies"]} == {"suggested"}
    assert verdict["remedies"][2] == {
        "remedy": "batch norm",
        "overrides": ["model.normalization={type: batch_norm}"],
        "status": "suggested",
    }
    text = CliRunner().invoke(app, ["diagnose", str(spec)]).stdout
    assert "suggested, untested" in text and "tested:" not in text


def test_a_run_still_learning_gets_twice_the_epochs_it_is_tested_with(tmp_path):
    spec = _spec(tiny_spec(training={"epochs": 20}))
    (more,) = remedies_for(["still_learning"], spec)
    assert more.label == "twice the epochs" and more.overrides == ["training.epochs=40"]
    from dnnlab.sweep.remedy_trials import plan

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(training={"epochs": 20}), sort_keys=False), encoding="utf-8")
    assert [r.overrides for r in plan(path, ["still_learning"])] == [["training.epochs=40"]]
    # `--try-remedies --epochs 3` trains the baseline 3 epochs: twice that is 6, not 40
    assert [r.overrides for r in plan(path, ["still_learning"], [], epochs=3)] == [["training.epochs=6"]]
