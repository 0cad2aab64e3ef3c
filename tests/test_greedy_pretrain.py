"""Greedy layer-wise pretraining (`training.pretrain`, Géron, Hands-On Machine Learning, ch. 11):
each hidden dense layer trains in turn as a one-layer autoencoder, the layers below it frozen,
then the whole network is fine-tuned; one run directory, resumable at any phase and epoch;
validation and test rows never reach pretraining; bad specs are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REGRESSION_8
from helpers import (
    _merge,
    assert_one_line_error,
    read_json,
    read_metrics,
    start,
    tiny_spec,
    without_seconds,
    write_spec,
)
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.data import datasets
from dnnlab.data.checked_spec import check_spec
from dnnlab.model.build import load_model
from dnnlab.training import greedy, lifecycle

runner = CliRunner()
EPOCHS_PER_LAYER = 3
INJECTOR = str(Path(__file__).with_name("fault_injection.py"))


def greedy_spec(**overrides):
    base = tiny_spec(
        name="greedy",
        data={"train_size": 200, "unlabeled": "rest", "scaling": "unit"},
        model={"hidden": [16, 8]},
        training={
            "epochs": 2,
            "batch_size": 64,
            "pretrain": {"method": "greedy_layerwise", "epochs_per_layer": EPOCHS_PER_LAYER},
        },
    )
    return _merge(base, overrides)


def pretrain_rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "pretrain.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Completed, the same pretrain.csv and metrics.csv (but seconds) and final weights, bit for bit."""
    assert read_json(resumed / "run.json")["status"] == "completed"
    assert without_seconds(pretrain_rows(resumed)) == without_seconds(pretrain_rows(reference))
    assert without_seconds(read_metrics(resumed)) == without_seconds(read_metrics(reference))
    a = load_model(resumed / "model.keras").get_weights()
    b = load_model(reference / "model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not list((resumed / "checkpoints").glob("pretrain-*.keras"))  # removed once committed past


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One run of greedy_spec, with the classifier's and each phase autoencoder's weights seen at
    every committed pretraining epoch."""
    seen = []
    record = greedy.Pretraining.record_epoch

    def watching(self, epoch, *args, **kwargs):
        record(self, epoch, *args, **kwargs)
        seen.append(
            {
                "phase": self.phase.name,
                "epoch": epoch,
                "classifier": {layer.name: layer.get_weights() for layer in self.classifier.layers},
                "trainable": [layer.name for layer in self.model.layers if layer.trainable_weights],
            }
        )

    folder = tmp_path_factory.mktemp("watched")
    patch = pytest.MonkeyPatch()
    patch.setattr(greedy.Pretraining, "record_epoch", watching)
    try:
        initial_spec = check_spec(write_spec(folder, greedy_spec()))
        result = lifecycle.start(initial_spec, folder / "runs", None, ["test"])
    finally:
        patch.undo()
    assert result.status == "completed", result
    return result.run_dir, seen


def test_phases_run_in_order_and_each_reconstruction_loss_falls(watched):
    run_dir, _ = watched
    rows = pretrain_rows(run_dir)
    assert [(r["phase"], r["layer"], int(r["epoch"])) for r in rows] == [
        (f"pretrain_{p}", f"dense_{p}", e) for p in (1, 2) for e in range(EPOCHS_PER_LAYER)
    ]
    for phase in ("pretrain_1", "pretrain_2"):
        losses = [float(r["loss"]) for r in rows if r["phase"] == phase]
        assert losses[-1] < losses[0], (phase, losses)
    assert len(read_metrics(run_dir)) == 2  # training.epochs counts the fine-tune's epochs only
    record = read_json(run_dir / "run.json")
    assert record["epochs_done"] == 2
    plan = record["pretrain"]
    assert plan["rows"] == 1150  # 200 labelled + 950 unlabelled rows of digits' 1437 less 287 for validation
    assert [(p["layer"], p["inputs"], p["units"], p["loss"]) for p in plan["phases"]] == [
        ("dense_1", 64, 16, "binary_crossentropy"),
        ("dense_2", 16, 8, "mse"),
    ]
    assert read_json(run_dir / "state.json")["pretrain"]["phase"] == 3  # past the last: done


def test_each_phase_trains_its_layer_alone_and_the_fine_tune_trains_all(watched):
    run_dir, seen = watched
    first = [s for s in seen if s["phase"] == "pretrain_1"]
    second = [s for s in seen if s["phase"] == "pretrain_2"]
    assert all(s["trainable"] == ["dense_1", "output"] for s in first)
    assert all(s["trainable"] == ["dense_2", "output"] for s in second)

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    after_first = first[-1]["classifier"]
    assert not same(first[0]["classifier"]["dense_1"], after_first["dense_1"])  # copied in at its end
    assert same(first[0]["classifier"]["dense_2"], after_first["dense_2"])  # not yet pretrained
    for s in second:  # frozen: dense_1 holds its pretrained numbers through phase 2
        assert same(s["classifier"]["dense_1"], after_first["dense_1"])
        assert same(s["classifier"]["output"], after_first["output"])  # the output waits for the fine-tune
    assert not same(second[-1]["classifier"]["dense_2"], after_first["dense_2"])
    final = load_model(run_dir / "model.keras")
    assert not same(final.get_layer("dense_1").get_weights(), after_first["dense_1"])  # fine-tuned too


@pytest.mark.parametrize("commits", [4, 5], ids=["at-phase-2-start", "in-phase-2"])
def test_interrupted_in_phase_2_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, commits):
    """A stacked denoising autoencoder per layer (tied, noise) with batch norm and dropout in the
    stack: interrupted after phase 2's start commit or its first epoch, resumed, it equals the
    uninterrupted run."""
    spec = greedy_spec(
        model={
            "normalization": "batch_norm",
            "dropout": {"rate": 0.2, "where": "hidden"},
            "autoencoder": {"tied": True, "noise": {"type": "gaussian", "stddev": 0.2}},
        },
        training={"pretrain": {"epochs_per_layer": 2}, "early_stopping": {"patience": 3}},
    )
    path = write_spec(tmp_path, spec)
    whole = start(path, tmp_path / "whole")
    assert whole.status == "completed"
    commit = greedy.Pretraining._commit
    count = 0

    def commit_then_interrupt(self, *args, **kwargs):
        nonlocal count
        commit(self, *args, **kwargs)
        count += 1  # phase 1: start, 2 epochs; phase 2: start (4), first epoch (5)
        if count == commits:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(greedy.Pretraining, "_commit", commit_then_interrupt)
        first = start(path, tmp_path / "parts")
    assert first.status == "interrupted"
    state = read_json(first.run_dir / "state.json")
    assert (state["epochs_done"], state["pretrain"]["phase"]) == (0, 2)
    assert state["pretrain"]["epochs_done"] == commits - 4
    assert len(pretrain_rows(first.run_dir)) == commits - 2
    resumed = lifecycle.resume(first.run_dir, None, ["test"])
    assert resumed.status == "completed"
    assert_same_run(resumed.run_dir, whole.run_dir)


def test_a_damaged_pretraining_commit_is_refused_in_one_line_and_changes_nothing(tmp_path, monkeypatch):
    spec = greedy_spec(model={"hidden": [8, 4]}, training={"pretrain": {"epochs_per_layer": 2}})
    commit = greedy.Pretraining._commit

    def commit_then_interrupt(self, pretrain, seconds):
        commit(self, pretrain, seconds)
        if (pretrain.phase, pretrain.epochs_done) == (2, 1):
            raise KeyboardInterrupt

    monkeypatch.setattr(greedy.Pretraining, "_commit", commit_then_interrupt)
    run_dir = start(write_spec(tmp_path, spec), tmp_path / "runs").run_dir
    monkeypatch.undo()
    rows = (run_dir / "pretrain.csv").read_bytes()
    checkpoint = run_dir / "checkpoints" / "pretrain-2-00001.keras"
    good = checkpoint.read_bytes()
    for damage, fragment in [
        (lambda: (run_dir / "pretrain.csv").write_bytes(rows[: len(rows) // 2]), "pretrain.csv"),
        (lambda: checkpoint.write_bytes(good[:100]), "cannot resume pretraining"),
    ]:
        damage()
        before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        out = runner.invoke(app, ["train", "--resume", str(run_dir)])
        assert_one_line_error(out, fragment)
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
        (run_dir / "pretrain.csv").write_bytes(rows)
        checkpoint.write_bytes(good)
    assert lifecycle.resume(run_dir, None, ["test"]).status == "completed"  # repaired, it resumes


def test_marked_validation_and_test_rows_never_reach_pretraining(tmp_path, monkeypatch):
    """Validation rows (the first training rows) and test rows carry a marker; the rows each
    phase's fit trains on (and the codes' source rows) are the labelled and unlabelled training
    rows only, and never hold it."""
    rng = np.random.default_rng(0)
    x_train, x_test = rng.random((120, 5)), rng.random((30, 5))
    marker = 12345.0
    x_train[:20, 0] = marker  # data.validation: 20 takes these rows
    x_test[:, 1] = marker
    npz = tmp_path / "marked.npz"
    np.savez(npz, x_train=x_train, y_train=np.arange(120) % 3, x_test=x_test, y_test=np.arange(30) % 3)
    data = {"dataset": {"type": "npz", "path": str(npz)}, "validation": 20, "scaling": "none"}
    spec = greedy_spec(data={**data, "train_size": 10}, model={"hidden": [4, 3]})
    spec["training"]["pretrain"]["epochs_per_layer"] = 1
    handed = []
    make = greedy.make_train_dataset
    codes = greedy.codes

    def spy_make(x, y, *args, **kwargs):
        handed.extend([np.array(x), np.array(y)])
        return make(x, y, *args, **kwargs)

    def spy_codes(model, index, x):
        handed.append(np.array(x))
        return codes(model, index, x)

    monkeypatch.setattr(greedy, "make_train_dataset", spy_make)
    monkeypatch.setattr(greedy, "codes", spy_codes)
    path = write_spec(tmp_path, spec)
    result = start(path, tmp_path / "runs")
    assert result.status == "completed"
    assert len(handed) == 6 and all(len(array) == 100 for array in handed)  # 10 labelled + 90 unlabelled
    assert not any(marker in array for array in handed)
    loaded = datasets.load(check_spec(path).spec.data)
    assert marker in loaded.x_val and marker in loaded.x_test  # the marker is there to be missed
    assert read_json(result.run_dir / "run.json")["pretrain"]["rows"] == 100


def test_a_regressor_pretrains_on_its_training_rows(tmp_path):
    spec = greedy_spec(data={**REGRESSION_8, "train_size": None, "unlabeled": None, "scaling": "standardize"})
    spec["training"]["pretrain"]["epochs_per_layer"] = 2
    result = start(write_spec(tmp_path, spec), tmp_path / "runs")
    assert result.status == "completed"
    rows = pretrain_rows(result.run_dir)
    assert [r["phase"] for r in rows] == ["pretrain_1"] * 2 + ["pretrain_2"] * 2
    assert read_json(result.run_dir / "run.json")["pretrain"]["phases"][0]["loss"] == "mse"  # standardized
    assert "mae" in read_metrics(result.run_dir)[0]


def test_a_diverging_phase_says_which_and_keeps_a_finite_model(tmp_path):
    spec = greedy_spec(
        model={"hidden": [8, 4]},
        data={"scaling": "standardize"},
        training={"optimizer": {"type": "sgd", "learning_rate": 1.0e8}},
    )
    result = start(write_spec(tmp_path, spec), tmp_path / "runs")
    assert result.status == "diverged"
    assert result.message.startswith("pretraining pretrain_1 (dense_1) diverged in epoch 1: loss nan")
    assert read_json(result.run_dir / "run.json")["divergence"]["phase"] == "pretrain_1 (dense_1)"
    assert read_metrics(result.run_dir) == []  # the fine-tune never began
    weights = load_model(result.run_dir / "model.keras").get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def test_check_and_summary_show_the_phases(tmp_path):
    path = write_spec(tmp_path, greedy_spec())
    out = runner.invoke(app, ["check", str(path)])
    assert out.exit_code == 0, out.output
    assert (
        "phases: pretrain_1 dense_1 64->16 (binary_crossentropy), pretrain_2 dense_2 16->8 (mse): "
        "3 epoch(s) each; then fine_tune: 2 epoch(s)"
    ) in out.stderr
    import json

    summary = json.loads(runner.invoke(app, ["summary", str(path), "--json"]).stdout)
    assert [p["name"] for p in summary["pretrain"]["phases"]] == ["pretrain_1", "pretrain_2"]
    assert summary["pretrain"]["epochs_per_layer"] == 3 and summary["fine_tune_epochs"] == 2


def unlabelled_csv(tmp_path: Path) -> dict:
    x = np.random.default_rng(1).random((60, 3))
    path = tmp_path / "inputs.csv"
    path.write_text("a,b,c\n" + "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in x))
    return {"type": "csv", "path": str(path), "target": None}


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            {"model": {"transfer": {"run": "runs/somewhere"}}},
            ["training.pretrain", "cannot be combined with model.transfer"],
        ),
        ({"data": {"task": "autoencoder", "train_size": None, "unlabeled": None}}, ["training.pretrain"]),
        ({"model": {"hidden": []}}, ["model.hidden", "at least one hidden dense layer"]),
        ({"training": {"pretrain": {"epochs_per_layer": 0}}}, ["training.pretrain.epochs_per_layer"]),
        ({"training": {"pretrain": {"method": "stacked"}}}, ["training.pretrain.method", "greedy_layerwise"]),
        ({"training": {"pretrain": {"epochs": 3}}}, ["training.pretrain"]),
        ({"data": {"dataset": "CSV", "train_size": None, "unlabeled": None}}, ["has no labels", "pretrain"]),
    ],
)
def test_bad_pretraining_specs_are_one_line_and_write_nothing(tmp_path, overrides, fragments):
    spec = greedy_spec(**overrides)
    if spec["data"]["dataset"] == "CSV":
        spec["data"]["dataset"] = unlabelled_csv(tmp_path)
    spec["data"] = {k: v for k, v in spec["data"].items() if v is not None}
    runs = tmp_path / "runs"
    out = runner.invoke(app, ["train", str(write_spec(tmp_path, spec)), "--runs-dir", str(runs)])
    assert_one_line_error(out, *fragments)
    assert not runs.exists()


@pytest.mark.parametrize("pretrain", [True, False], ids=["pretrained", "plain"])
def test_a_csv_with_empty_label_cells_is_one_line_and_writes_nothing(tmp_path, pretrain):
    """Rows without a label are refused, not read as a class named '' (the fine-tune, like any
    classifier, needs a label for every row it trains on)."""
    x = np.random.default_rng(2).random((60, 3))
    lines = ["a,b,c,y"] + [
        ",".join(f"{v:.3f}" for v in row) + "," + (str(i % 2) if i < 30 else "") for i, row in enumerate(x)
    ]
    path = tmp_path / "partial.csv"
    path.write_text("\n".join(lines) + "\n")
    spec = greedy_spec(data={"dataset": {"type": "csv", "path": str(path), "target": "y"}, "train_size": 20})
    if not pretrain:
        del spec["training"]["pretrain"]
        spec["data"] = {k: v for k, v in spec["data"].items() if k not in ("train_size", "unlabeled")}
    runs = tmp_path / "runs"
    out = runner.invoke(app, ["train", str(write_spec(tmp_path, spec)), "--runs-dir", str(runs)])
    assert_one_line_error(out, "partial.csv line 32, column 4: the label is missing")
    assert not runs.exists()


def test_model_autoencoder_without_pretraining_is_still_refused(tmp_path):
    spec = tiny_spec(model={"autoencoder": {"tied": True}})
    out = runner.invoke(app, ["check", str(write_spec(tmp_path, spec))])
    assert_one_line_error(out, "model.autoencoder", "training.pretrain")


# --- a real kill ------------------------------------------------------------------------------


@pytest.mark.slow  # three processes that import TensorFlow
@pytest.mark.parametrize("nth", [4, 5], ids=["mid-phase-2", "phase-2-last-epoch"])
def test_sigkill_in_phase_2_then_resume_equals_uninterrupted(tmp_path, nth):
    """`dnnlab train` killed (SIGKILL: no handler runs) at the nth write of pretrain.csv: the 4th
    is phase 2's first epoch's commit; the 5th its last's, after the classifier's checkpoint
    already holds the pretrained layer 2. `dnnlab train --resume` then equals the uninterrupted run."""
    spec = greedy_spec(training={"pretrain": {"epochs_per_layer": 2}})
    path = write_spec(tmp_path, spec)
    whole = start(path, tmp_path / "whole")
    runs = tmp_path / "killed"
    command = [sys.executable, INJECTOR, "kill", "pretrain.csv", str(nth), "train", str(path)]
    done = subprocess.run(
        [*command, "--runs-dir", str(runs), "-q"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == -9, done.stderr
    (run_dir,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    state = read_json(run_dir / "state.json")
    assert (state["pretrain"]["phase"], state["pretrain"]["epochs_done"]) == (2, nth - 4)
    resumed = subprocess.run(
        [sys.executable, "-m", "dnnlab", "train", "--resume", str(run_dir), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, whole.run_dir)
