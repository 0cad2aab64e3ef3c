"""`dnnlab compare` on real run directories written by `dnnlab train`.

Five tiny runs are trained once for the module: three activations with seed 1 and two of them
again with seed 2. The tests work out from the files themselves what compare should say (which
config keys differ, which run has the lowest val_loss) and check the command agrees.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app

# Only model.activation (and seed) vary; the initializer is left to its default, which follows
# the activation, so it may differ too, and then compare must say so.
SPEC = {
    "name": "act",
    "seed": 1,
    "data": {
        "dataset": {"type": "synthetic", "shape": [20], "classes": 4, "train": 400, "test": 50},
        "validation": 100,
    },
    "model": {"hidden": [16]},
    "training": {"epochs": 3, "batch_size": 32},
}
ACTIVATIONS = ("relu", "elu", "selu")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, int], Path]:
    """(activation, seed) -> run directory, for the three activations at seed 1 and two at seed 2."""
    root = tmp_path_factory.mktemp("compare-runs")
    spec_path = write_spec(root, SPEC)
    made = {}
    for activation, seed in [(a, 1) for a in ACTIVATIONS] + [("relu", 2), ("elu", 2)]:
        overrides = [f"model.activation={activation}", f"seed={seed}"]
        made[(activation, seed)] = train_run(spec_path, root / "runs", overrides, f"{activation}-s{seed}")
    return made


@pytest.fixture(scope="module")
def seed1(runs) -> list[Path]:
    return [runs[(a, 1)] for a in ACTIVATIONS]


def compare(*args: Any):
    return runner.invoke(app, ["compare", *map(str, args)])


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a config as dotted key -> value (lists are leaves)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(flatten(child, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def leaf_differences(run_dirs: list[Path], ignore: tuple[str, ...] = ("name",)) -> set[str]:
    """Dotted leaf keys whose values (or presence) differ between the runs' config.yaml files."""
    flat = [flatten(yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))) for d in run_dirs]
    keys = {k for f in flat for k in f if k.split(".")[0] not in ignore}
    absent = object()
    return {k for k in keys if len({repr(f.get(k, absent)) for f in flat}) > 1}


def config_value(run_dir: Path, dotted: str) -> Any:
    value = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    for part in dotted.split("."):
        value = value[part]
    return value


def lowest_val_loss(run_dirs: list[Path]) -> Path:
    def best(run_dir: Path) -> float:
        with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as handle:
            return min(float(row["val_loss"]) for row in csv.DictReader(handle))

    return min(run_dirs, key=best)


# --- differing keys and the winner ------------------------------------------------------------


def test_json_differing_keys_are_exactly_what_differs_in_the_config_files(seed1):
    result = compare(*seed1, "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    reported = out["differing_keys"]
    leaves = leaf_differences(seed1)

    assert "model.activation.type" in leaves  # the premise: the activations really differ
    # Exactly the leaf keys that differ, but a mapping whose `type` differs is one key, holding
    # the type and the keys only some types have (elu's alpha); keys every type has stay leaves.
    flats = [flatten(yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))) for d in seed1]
    typed = {key.removesuffix(".type") for key in leaves if key.endswith(".type")}
    kept = {
        key
        for key in leaves
        if not any(key.startswith(t + ".") for t in typed)
        or (key.removesuffix(".type") not in typed and all(key in flat for flat in flats))
    }
    assert len(reported) == len(set(reported))
    assert set(reported) == typed | kept and "model.activation.alpha" not in reported
    assert {key.split(".")[0] for key in leaves} == {"model"}  # seeds, data, training all equal

    params = {Path(r["run"]): r["params"] for r in out["runs"]}
    for run_dir, flat in zip(seed1, flats):
        for key in reported:
            if key in typed:
                own = {k.removeprefix(key + "."): v for k, v in flat.items() if k.startswith(key + ".")}
                assert params[run_dir][key] == {k: v for k, v in own.items() if k not in kept}
            else:
                assert params[run_dir][key] == flat.get(key), (run_dir, key)  # absent: null


def test_initializer_default_follows_the_activation(seed1):
    """Background for the test above: left to its default, the initializer follows the activation
    (He for the ReLU family, LeCun for SELU), so it differs too and compare says so."""
    initializers = {
        config_value(d, "model.activation.type"): config_value(d, "model.initializer.type") for d in seed1
    }
    assert initializers == {"relu": "he_normal", "elu": "he_normal", "selu": "lecun_normal"}
    out = json.loads(compare(*seed1, "--format", "json").stdout)
    assert "model.initializer" in out["differing_keys"]


def test_best_run_has_the_lowest_val_loss_in_metrics_csv(seed1):
    out = json.loads(compare(*seed1, "--format", "json").stdout)
    assert out["metric"] == "val_loss" and out["mode"] == "min"
    assert Path(out["best_run"]) == lowest_val_loss(seed1)
    assert Path(out["runs"][0]["run"]) == lowest_val_loss(seed1)  # ranked best first


def test_table_names_every_run(seed1):
    result = compare(*seed1)
    assert result.exit_code == 0, result.stderr
    for run_dir in seed1:
        assert run_dir.name.rsplit("-", 2)[0] in result.stdout or run_dir.name in result.stdout
    for activation in ACTIVATIONS:
        assert activation in result.stdout


def test_a_folder_of_runs_stands_for_the_runs_inside_it(runs):
    root = next(iter(runs.values())).parent
    out = json.loads(compare(root, "--format", "json").stdout)
    assert {Path(r["run"]) for r in out["runs"]} == set(runs.values())


# --- the plot -----------------------------------------------------------------------------------


def test_plot_writes_a_png(seed1, tmp_path):
    path = tmp_path / "curves.png"
    result = compare(*seed1, "--plot", path)
    assert result.exit_code == 0, result.stderr
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000  # curves, legend and labels, not an empty canvas
    assert str(path) in result.stderr


def test_plot_emits_no_python_warning(seed1, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "Tight layout not applied"
        result = compare(*seed1, "--plot", tmp_path / "curves.png")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Warning" not in result.stderr


def test_json_differing_keys_of_an_optimizer_pair_fold_each_type_s_own_keys(tmp_path):
    spec_path = write_spec(tmp_path, SPEC)
    pair = [
        train_run(
            spec_path, tmp_path / "runs", ["training.epochs=1", f"training.optimizer={optimizer}"], name
        )
        for name, optimizer in (("sgd", "{type: sgd, momentum: 0.9}"), ("nadam", "nadam"))
    ]
    out = json.loads(compare(*pair, "--format", "json").stdout)
    assert out["differing_keys"] == ["training.optimizer", "training.optimizer.learning_rate"]
    optimizers = {
        Path(run["run"]).name.split("-")[0]: run["params"]["training.optimizer"] for run in out["runs"]
    }
    assert optimizers["sgd"] == {"type": "sgd", "momentum": 0.9, "nesterov": False}
    assert optimizers["nadam"]["type"] == "nadam" and optimizers["nadam"]["beta_1"] == 0.9
    assert "momentum" not in optimizers["nadam"] and "learning_rate" not in optimizers["nadam"]


def test_plot_into_a_missing_folder_is_a_user_error(seed1, tmp_path):
    result = compare(*seed1, "--plot", tmp_path / "nope" / "curves.png")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# --- seed groups --------------------------------------------------------------------------------


def test_group_seeds_gives_one_group_per_activation(runs):
    dirs = [runs[(a, s)] for a in ("relu", "elu") for s in (1, 2)]
    result = compare(*dirs, "--group-seeds", "--format", "json")
    assert result.exit_code == 0, result.stderr
    groups = json.loads(result.stdout)["groups"]
    assert len(groups) == 2
    assert [g["n"] for g in groups] == [2, 2]
    by_activation = {}
    for group in groups:
        members = {Path(r) for r in group["runs"]}
        activations = {config_value(d, "model.activation")["type"] for d in members}
        assert len(activations) == 1
        by_activation[activations.pop()] = group
        assert sorted(group["seeds"]) == [1, 2]
        assert group["best"]["n"] == 2 and group["best"]["std"] is not None
    assert set(by_activation) == {"relu", "elu"}
    assert {Path(r) for r in by_activation["relu"]["runs"]} == {runs[("relu", 1)], runs[("relu", 2)]}
    # The group mean is the mean of the members' lowest val_loss.
    for group in groups:
        values = []
        for member in group["runs"]:
            with open(Path(member) / "metrics.csv", newline="", encoding="utf-8") as handle:
                values.append(min(float(row["val_loss"]) for row in csv.DictReader(handle)))
        assert group["best"]["mean"] == pytest.approx(sum(values) / 2, rel=1e-5)


# --- bad input ----------------------------------------------------------------------------------


def test_an_empty_folder_exits_2_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = compare(empty)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "No run directories found" in lines[0]


def test_a_bogus_path_is_skipped_with_a_note(seed1, tmp_path):
    bogus = tmp_path / "not-a-run"
    result = compare(seed1[0], bogus, seed1[1], "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {Path(r["run"]) for r in out["runs"]} == {seed1[0], seed1[1]}
    assert out["skipped"] == [str(bogus)]
    assert "skipped 1 path" in result.stderr and str(bogus) in result.stderr


def test_group_seeds_plot_labels_tell_the_seeds_apart(runs):
    from dnnlab.results import compare as comparing
    from dnnlab.results import formats as compare_format

    dirs = [runs[(a, s)] for a in ("relu", "elu") for s in (1, 2)]
    labels = compare_format.run_labels(comparing.compare(dirs, group_seeds=True))
    assert len(set(labels.values())) == len(dirs), labels
