"""Hostile and nonsensical specs: one `error:` line, exit code 2, no traceback, no run directory,
and never a hang or an exhausted memory.

Most cases run in-process through Typer's CliRunner; the ones that used to hang or exhaust
memory (an alias bomb, /dev/zero, a FIFO) run `dnnlab` in a subprocess under a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.files import safe_yaml
from dnnlab.spec.keras_names import (
    LOSS_NAMES,
    METRIC_NAMES,
    REGRESSION_LOSSES,
    REGRESSION_METRICS,
    SPARSE_LABEL_LOSSES,
    SPARSE_LABEL_METRICS,
)

VALID = {"name": "bad", "data": {"dataset": "iris"}, "model": {"hidden": [4]}, "training": {"epochs": 1}}
VALID_YAML = yaml.safe_dump(VALID, sort_keys=False)


def billion_laughs(levels: int = 9, key: str = "name") -> str:
    """A document of a few hundred bytes whose `key` stands for 10**levels strings."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"lol{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\n{key}: *l{levels - 1}\n" + "data: {dataset: iris}\nmodel: {hidden: [4]}\n"


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(stderr: str, exit_code: int, output: str = "", *fragments: str) -> str:
    assert exit_code == 2, (exit_code, stderr, output)
    assert "Traceback" not in stderr + output
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def check_and_train(config: Path, tmp_path: Path, *fragments: str, overrides=()) -> str:
    """`dnnlab check` and `dnnlab train --runs-dir` both fail with the same one line and leave
    no run directory behind."""
    args = [a for o in overrides for a in ("-o", o)]
    checked = invoke("check", config, *args)
    line = assert_one_line_error(checked.stderr, checked.exit_code, checked.stdout, *fragments)
    runs = tmp_path / "runs"
    trained = invoke("train", config, "--runs-dir", runs, *args)
    assert assert_one_line_error(trained.stderr, trained.exit_code, trained.stdout, *fragments) == line
    assert not runs.exists() or not any(runs.iterdir())
    return line


def write(tmp_path: Path, content: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- YAML that is not a reasonable document ------------------------------------------------


@pytest.mark.parametrize("key", ["name", "seed", "model"])
def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path, key):
    line = check_and_train(write(tmp_path, billion_laughs(key=key)), tmp_path, "aliases", "100000 values")
    assert len(line) < 300


def test_a_small_alias_bomb_in_a_typed_field_reports_a_short_received_value(tmp_path):
    levels = 4  # 10**4 values: under the cap, so validation sees the whole expanded list
    text = billion_laughs(levels, key="name").replace("hidden: [4]", f"hidden: *l{levels - 1}")
    line = check_and_train(write(tmp_path, text), tmp_path, "name:", "valid string", "...")
    assert len(line) < 300


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    text = VALID_YAML + "extra: " + "[" * 500 + "]" * 500 + "\n"
    line = f"line {VALID_YAML.count(chr(10)) + 1}:"
    check_and_train(write(tmp_path, text), tmp_path, line, "nested deeper than 64 levels")


@pytest.mark.parametrize(
    "content, fragments",
    [
        (VALID_YAML.encode("utf-16"), ["not UTF-8 text", "0xff at offset 0"]),
        ("name: caf\xe9\n".encode("latin-1"), ["not UTF-8 text", "0xe9"]),
        (bytes(range(256)), ["not UTF-8 text"]),
        (b"name: a\x00b\n", ["not valid YAML", "control characters"]),
    ],
    ids=["utf-16", "latin-1", "binary", "nul"],
)
def test_text_that_is_not_utf8_yaml_is_one_line(tmp_path, content, fragments):
    check_and_train(write(tmp_path, content), tmp_path, *fragments)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    result = invoke("check", write(tmp_path, "\ufeff" + VALID_YAML))
    assert result.exit_code == 0, result.stderr


def test_a_file_over_one_mebibyte_is_refused(tmp_path):
    text = VALID_YAML + "# " + "x" * safe_yaml.MAX_BYTES + "\n"
    check_and_train(write(tmp_path, text), tmp_path, "larger than 1 MiB")


@pytest.mark.parametrize("value", ["9" * 5000, "!!int ''", "!!float ''", "!!bool maybe", "!!timestamp x"])
def test_a_value_yaml_cannot_read_is_one_line_at_its_line(tmp_path, value):
    line = f"line {VALID_YAML.count(chr(10)) + 1}:"
    check_and_train(write(tmp_path, VALID_YAML + f"seed: {value}\n"), tmp_path, line, "cannot read")


def test_an_override_and_an_extends_file_go_through_the_same_caps(tmp_path):
    config = write(tmp_path, VALID_YAML)
    deep = "name=" + "[" * 100 + "]" * 100
    check_and_train(config, tmp_path, "override", "nested deeper", overrides=[deep])
    write(tmp_path, billion_laughs(key="seed"), "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml")
    check_and_train(child, tmp_path, "base.yaml", "aliases")


@pytest.mark.parametrize("command", ["sweep", "summary", "resume"])
def test_every_command_that_reads_yaml_uses_the_same_caps(tmp_path, command):
    bomb = write(tmp_path, billion_laughs())
    runs = tmp_path / "runs"
    if command == "resume":
        run = runs / "r1"
        run.mkdir(parents=True)
        os.replace(bomb, run / "config.yaml")
        (run / "run.json").write_text(json.dumps({"name": "r1", "status": "interrupted"}), encoding="utf-8")
        args = ["train", "--resume", run]
    else:
        args = [command, bomb, *(["--runs-dir", runs] if command == "sweep" else [])]
    result = invoke(*args)
    assert_one_line_error(result.stderr, result.exit_code, result.stdout, "aliases")
    assert command == "resume" or not runs.exists()


# --- what used to hang or exhaust memory: a subprocess under a timeout ----------------------


def run_dnnlab(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "dnnlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,  # a hang fails the test instead of the suite; each case takes about a second
        cwd=cwd,
        env=env,
    )


def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("source", ["bomb", "fifo", "/dev/zero"])
def test_nothing_blocks_or_exhausts_memory(tmp_path, command, source):
    if source == "bomb":
        config, fragment = write(tmp_path, billion_laughs(levels=12)), "aliases"
    elif source == "fifo":
        config, fragment = fifo(tmp_path), "not a regular file (a FIFO)"
    else:
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        config, fragment = Path("/dev/zero"), "not a regular file (a device)"
    extra = ["--runs-dir", tmp_path / "runs"] if command == "train" else []
    result = run_dnnlab(command, config, *extra, cwd=tmp_path)
    assert_one_line_error(result.stderr, result.returncode, result.stdout, fragment)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("damage", ["bomb", "fifo"])
@pytest.mark.parametrize("command", ["compare-table", "compare-json", "report"])
def test_compare_and_report_note_a_hostile_config_yaml_and_go_on(tmp_path, damage, command):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": "r1", "status": "completed"}), encoding="utf-8")
    (run / "metrics.csv").write_text("epoch,loss\n0,1.5\n", encoding="utf-8")
    if damage == "bomb":
        (run / "config.yaml").write_text(billion_laughs(levels=12), encoding="utf-8")
    else:
        os.rename(fifo(tmp_path), run / "config.yaml")
    page = tmp_path / "report.html"
    if command == "report":
        result = run_dnnlab("report", run, "--out", page, cwd=tmp_path)
    else:
        result = run_dnnlab("compare", run, "--format", command.removeprefix("compare-"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = page.read_text(encoding="utf-8") if command == "report" else result.stdout
    assert "config.yaml unreadable" in shown


# --- values a spec used to accept ---------------------------------------------------------

NONSENSE = [
    ("lr 1e999", ["training.optimizer.learning_rate=1e999"], ["learning_rate", "finite number", "1e999"]),
    ("lr .inf", ["training.optimizer.learning_rate=.inf"], ["learning_rate", "finite number", "inf"]),
    ("lr .nan", ["training.optimizer.learning_rate=.nan"], ["learning_rate", "finite number", "nan"]),
    ("max_lr inf", ["training.schedule={type: one_cycle, max_lr: .inf}"], ["max_lr", "finite number"]),
    (
        "monitor val_bogus",
        ["training.monitor=val_bogus"],
        ["training.monitor", "'val_bogus'", "does not log", "expected one of: loss, accuracy, val_loss"],
    ),
    (
        "early stopping monitor",
        ["training.early_stopping={monitor: val_acuracy}"],
        ["training.early_stopping.monitor", "did you mean 'val_accuracy'", "does not log"],
    ),
    (
        "plateau monitor",
        ["training.schedule={type: plateau, monitor: val_mae}"],
        ["training.schedule.monitor", "'val_mae'", "does not log"],
    ),
    (
        "val_ monitor without validation",
        ["data.validation=0", "training.monitor=val_accuracy"],
        ["training.monitor", "data.validation is 0"],
    ),
    (
        "loss",
        ["training.loss=bogus_loss"],
        ["training.loss", "'bogus_loss'", "expected one of:", "sparse_categorical_crossentropy"],
    ),
    (
        "metric",
        ["training.metrics=[accuracy, bogus_metric]"],
        ["training.metrics[1]", "'bogus_metric'", "expected one of:", "accuracy"],
    ),
    (
        "a loss for other labels",
        ["training.loss=mse"],
        [
            "training.loss",
            "does not suit the labels",
            "output has 3 units",
            "sparse_categorical_crossentropy",
        ],
    ),
    ("a metric for other labels", ["training.metrics=[auc]"], ["training.metrics[0]", "'auc' does not suit"]),
    (
        "sparse loss on a regression",
        ["data.dataset=diabetes", "training.loss=sparse_categorical_crossentropy"],
        ["training.loss", "the target is a number per row", "mse"],
    ),
    ("seed 2**32", ["seed=4294967296"], ["seed", "less than or equal to 4294967295", "4294967296"]),
    ("seed negative", ["seed=-1"], ["seed", "greater than or equal to 0"]),
    (
        "a billion units",
        ["model.hidden=[1000000000]"],
        ["model.hidden", "8,000,000,003 parameters", "at most 100,000,000"],
    ),
    ("too many layers", ["model.hidden=" + str([1] * 1001)], ["model.hidden", "at most 1000 items"]),
]


@pytest.mark.parametrize("overrides, fragments", [c[1:] for c in NONSENSE], ids=[c[0] for c in NONSENSE])
def test_nonsense_values_are_one_line_before_any_run_directory(tmp_path, overrides, fragments):
    check_and_train(write(tmp_path, VALID_YAML), tmp_path, *fragments, overrides=overrides)


def test_a_monitor_may_name_any_metric_the_run_logs(tmp_path):
    config = write(tmp_path, VALID_YAML)
    for overrides in (
        ["data.dataset=diabetes", "training.metrics=[mse]", "training.monitor=val_mse"],
        ["training.monitor=accuracy", "training.early_stopping={monitor: loss}"],
        ["data.validation=0", "training.monitor=loss"],
    ):
        result = invoke("check", config, *[a for o in overrides for a in ("-o", o)])
        assert result.exit_code == 0, (overrides, result.stderr)


def test_messages_show_markup_and_emoji_codes_verbatim(tmp_path):
    text = ":x: [bold]x[/bold]"
    config = write(tmp_path, VALID_YAML)
    line = check_and_train(config, tmp_path, repr(text), overrides=[f"training.loss='{text}'"])
    assert "\u274c" not in line  # rich's :x: emoji


# --- click's usage errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, option",
    [
        (["train", "--resume", "run", "--epochs", "abc"], "--epochs"),
        (["mc-predict", "run", "--samples", "abc"], "--samples"),
        (["mc-predict", "run", "--seed", "abc"], "--seed"),
        (["lr-find", "spec.yaml", "--steps", "abc"], "--steps"),
        (["lr-find", "spec.yaml", "--min", "abc"], "--min"),
        (["diagnose", "spec.yaml", "--steps", "abc"], "--steps"),
        (["sweep", "spec.yaml", "--jobs", "abc"], "--jobs"),
        (["compare", "run", "--format", "bogus"], "--format"),
        (["export", "run", "--format", "bogus"], "--format"),
        (["train", "spec.yaml", "--bogus"], "--bogus"),
    ],
)
def test_a_bad_option_value_is_one_line_in_every_command(args, option):
    result = invoke(*args)
    assert_one_line_error(result.stderr, result.exit_code, result.stdout, option)


# --- the vocabulary matches Keras ---------------------------------------------------------


def test_every_listed_loss_and_metric_name_is_one_keras_accepts_and_logs_under_that_name():
    keras = pytest.importorskip("keras")
    import numpy as np

    for name in LOSS_NAMES:
        assert callable(keras.losses.get(name)), name
    for name in METRIC_NAMES:
        assert name == "acc" or keras.metrics.get(name) is not None, name  # compile maps acc
    # the monitor check relies on Keras logging a metric under the name the spec gives
    for units, y, metrics in (
        (3, np.array([0, 1, 2, 1]), ["acc", "accuracy", "sparse_top_k_categorical_accuracy"]),
        (1, np.array([[0.5], [1.0], [0.0], [2.0]]), ["mse", "mean_absolute_error", "r2_score"]),
    ):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])
        model.compile(loss="mse" if units == 1 else "sparse_categorical_crossentropy", metrics=metrics)
        logs = model.evaluate(np.zeros((4, 2)), y, verbose=0, return_dict=True)
        assert sorted(logs) == sorted(["loss", *metrics])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_name_the_labels_allow_trains_an_epoch(task):
    """What check_loss_and_metrics_suit_the_labels lets through, Keras computes: each allowed
    loss and metric fits one epoch on the label shape dnnlab gives that task."""
    keras = pytest.importorskip("keras")
    import numpy as np

    x = np.random.default_rng(0).random((8, 2), dtype="float32")
    if task == "classification":
        units, activation, y, losses, metrics = (
            3,
            "softmax",
            np.arange(8) % 3,
            SPARSE_LABEL_LOSSES,
            SPARSE_LABEL_METRICS,
        )
    else:
        units, activation, y = 1, "linear", np.linspace(0, 2, 8, dtype="float32")
        losses, metrics = REGRESSION_LOSSES, REGRESSION_METRICS
    default_loss = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    for loss, metric in [(name, []) for name in losses] + [(default_loss, [name]) for name in metrics]:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation=activation)])
        model.compile(loss=loss, metrics=metric, optimizer="sgd")
        history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        assert sorted(history.history) == sorted(["loss", *metric]), (loss, metric)


def test_keeping_one_class_is_refused_before_training(tmp_path):
    """A one-class classifier learns nothing and would report accuracy 0, loss 0."""
    config = write(tmp_path, VALID_YAML)
    check_and_train(config, tmp_path, "data.classes", "at least 2", "[1]", overrides=["data.classes=[1]"])
