"""The command line: bad specs are one line and exit code 2, JSON output, and fast start-up.

Commands run in-process through Typer's CliRunner, which keeps stdout and stderr apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, tiny_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def spec_with(base_data: dict, **sections) -> dict:
    spec = {"data": base_data, "model": {"hidden": [30, 20]}}
    spec.update(sections)
    return spec


# --- bad specs -----------------------------------------------------------------------------

# (case id, changes to a valid regression spec, fragments the one error line must contain)
BAD_SPECS = [
    (
        "unknown key",
        {"model": {"hidden": [30], "activaton": "relu"}},
        ["model.activaton", "unknown key", "did you mean 'activation'", "allowed keys:"],
    ),
    (
        "misspelled activation",
        {"model": {"hidden": [30], "activation": "reluu"}},
        ["model.activation", "'reluu'", "did you mean 'relu'", "expected one of:", "leaky_relu"],
    ),
    (
        "wrong type",
        {"training": {"epochs": "ten"}},
        ["training.epochs", "integer", "'ten'"],
    ),
    (
        "negative units",
        {"model": {"hidden": [-5]}},
        ["model.hidden[0]", "greater than 0", "-5"],
    ),
    (
        "clipnorm and clipvalue",
        {"training": {"optimizer": {"type": "sgd", "clipnorm": 1.0, "clipvalue": 0.5}}},
        ["training.optimizer", "only one of", "clipvalue", "clipnorm"],
    ),
    (
        "Keras 2 lr",
        {"training": {"optimizer": {"type": "adam", "lr": 0.01}}},
        ["training.optimizer.lr", "unknown key", "learning_rate"],
    ),
    (
        "piecewise boundaries not increasing",
        {
            "training": {
                "schedule": {"type": "piecewise", "boundaries": [10, 5], "values": [0.1, 0.01, 0.001]}
            }
        },
        ["training.schedule.boundaries", "strictly increasing", "[10, 5]"],
    ),
    (
        "piecewise values count",
        {"training": {"schedule": {"type": "piecewise", "boundaries": [5, 10], "values": [0.1, 0.01]}}},
        ["training.schedule.values", "one more value than boundaries"],
    ),
    (
        "dropout rate 1",
        {"model": {"hidden": [30], "dropout": {"rate": 1.0}}},
        ["model.dropout.rate", "less than 1", "1.0"],
    ),
    (
        "rrelu lower above upper",
        {"model": {"hidden": [30], "activation": {"type": "rrelu", "lower": 0.5, "upper": 0.1}}},
        ["model.activation", "lower (0.5) must be <= upper (0.1)"],
    ),
    (
        "unknown dataset",
        {"data": {"dataset": "fashion_mnst"}},
        ["data.dataset", "'fashion_mnst'", "did you mean 'fashion_mnist'", "expected one of:"],
    ),
]


@pytest.mark.parametrize("changes, fragments", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_one_line_naming_the_key_and_exit_code_2(write_spec, regression_data, changes, fragments):
    path = write_spec(spec_with(regression_data, **changes))
    result = invoke("check", path)
    assert_one_line_error(result, *fragments)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("- data\n- model\n", ["expected a YAML mapping", "received list"]),
        ("", ["expected a YAML mapping", "received empty"]),
        ("data: {dataset: [\nmodel: x\n", ["not valid YAML", "line 3"]),
    ],
    ids=["list", "empty", "invalid syntax"],
)
def test_file_that_is_not_a_spec_mapping_is_one_line(write_spec, text, fragments):
    path = write_spec(text)
    assert_one_line_error(invoke("check", path), str(path), *fragments)


def test_missing_file_is_one_line(tmp_path):
    path = tmp_path / "nowhere.yaml"
    assert_one_line_error(invoke("check", path), str(path), "no such file")


def test_python_tag_is_refused_without_running_it(write_spec, tmp_path):
    marker = tmp_path / "hacked"
    path = write_spec(f'!!python/object/apply:os.system ["echo hacked > {marker}"]\n')
    assert_one_line_error(invoke("check", path), "not valid YAML", "python/object/apply")
    assert not marker.exists(), "the YAML tag ran a shell command"


def test_python_tag_inside_the_spec_is_refused(write_spec, tmp_path):
    marker = tmp_path / "hacked"
    path = write_spec(f'data: !!python/object/apply:os.system ["touch {marker}"]\nmodel: {{hidden: [3]}}\n')
    assert_one_line_error(invoke("summary", path), "not valid YAML")
    assert not marker.exists()


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("model.hidden=abc", ["model.hidden", "'abc'"]),
        ("noequals", ["'noequals'", "KEY=VALUE"]),
        ("model.hidden=[30, -1]", ["model.hidden[1]", "greater than 0"]),
    ],
)
def test_invalid_override_is_one_line(write_spec, regression_data, override, fragments):
    path = write_spec(spec_with(regression_data))
    assert_one_line_error(invoke("check", path, "-o", override), *fragments)


def test_bad_spec_fails_the_same_way_for_summary_and_train(write_spec, regression_data, tmp_path):
    path = write_spec(spec_with(regression_data, model={"hidden": [30], "activation": "reluu"}))
    for args in (["summary", path], ["train", path, "--runs-dir", tmp_path / "runs"]):
        assert_one_line_error(invoke(*args), "model.activation", "did you mean 'relu'")
    assert not (tmp_path / "runs").exists()


# --- check --json --------------------------------------------------------------------------


def test_check_json_lists_the_warnings(write_spec, regression_data):
    path = write_spec(
        spec_with(
            regression_data, model={"hidden": [30], "activation": "relu", "initializer": "glorot_uniform"}
        )
    )
    result = invoke("check", path, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert payload["valid"] is True
    assert payload["errors"] == []
    assert [w["key"] for w in payload["warnings"]] == ["model.hidden[0]"]
    assert "He initialization" in payload["warnings"][0]["message"]
    assert "valid:" in result.stderr and "1 warning" in result.stderr


def test_lines_with_long_paths_are_never_wrapped(tmp_path, regression_data):
    """Off a terminal nothing is wrapped at 80 columns, however long the path in a line."""
    folder = tmp_path / ("a-very-long-folder-name-" * 6)
    folder.mkdir()
    spec = spec_with(
        regression_data, model={"hidden": [30], "activation": "relu", "initializer": "glorot_uniform"}
    )
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke("check", path)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[-1] == f"valid: {path} (1 warning(s))"
    assert len(lines) == 2 and lines[0].startswith("warning: model.hidden[0]")


def test_check_json_on_a_valid_spec_without_advice(write_spec, images_data):
    path = write_spec({"data": images_data, "model": {"hidden": [300, 100], "activation": "elu"}})
    result = invoke("check", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"valid": True, "errors": [], "warnings": []}


def test_check_json_on_an_invalid_spec(write_spec, regression_data):
    path = write_spec(spec_with(regression_data, training={"epochs": 0}))
    result = invoke("check", path, "--json")
    payload = json.loads(result.stdout)
    assert payload["valid"] is False
    assert len(payload["errors"]) == 1 and "training.epochs" in payload["errors"][0]
    assert payload["warnings"] == []
    assert_one_line_error(result, "training.epochs")


# --- summary --json ------------------------------------------------------------------------


def test_summary_json_counts_gerons_batch_norm_model(write_spec, images_data):
    """Fashion-MNIST with batch norm, as in Géron's chapter: 271,346 parameters, 2,368 non-trainable."""
    path = write_spec(
        {
            "data": images_data,
            "model": {
                "hidden": [300, 100],
                "activation": "elu",
                "input_normalization": "batch_norm",
                "normalization": "batch_norm",
            },
        }
    )
    result = invoke("summary", path, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["total_params"] == 271_346
    assert summary["non_trainable_params"] == 2_368
    assert summary["trainable_params"] == 271_346 - 2_368
    assert [layer["params"] for layer in summary["layers"]] == [0, 3_136, 235_500, 1_200, 30_100, 400, 1_010]
    assert summary["layers"][-1]["output_shape"] == [None, 10]


# --- schema and start-up -------------------------------------------------------------------


def test_schema_is_json_with_the_three_sections():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"data", "model", "training"} <= set(schema["properties"])
    assert set(schema["required"]) == {"data", "model"}


def test_help_check_and_schema_do_not_import_tensorflow(write_spec, images_data):
    """TensorFlow takes seconds to import; these commands must not pay for it."""
    path = write_spec(
        {
            "data": images_data,
            "model": {"hidden": [30], "activation": "relu", "initializer": "glorot_uniform"},
        }
    )
    script = textwrap.dedent(
        f"""
        import sys
        from typer.testing import CliRunner
        from dnnlab.cli.main import app
        runner = CliRunner()
        for args in (["--help"], ["check", {str(path)!r}], ["check", {str(path)!r}, "--json"], ["schema"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output, result.exception)
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        assert not heavy, heavy
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_diagnose_and_report_of_a_finished_run_do_not_import_tensorflow(write_spec, tmp_path):
    """A run directory is read from disk: `diagnose RUN_DIR` takes its layers.csv and `report`
    its records, neither the model, so neither pays for TensorFlow's import."""
    spec = tiny_spec(training={"epochs": 1, "diagnostics": {"every": 1}})
    trained = invoke("train", write_spec(spec), "--runs-dir", tmp_path / "runs", "-q")
    assert trained.exit_code == 0, trained.output
    run = trained.stdout.strip().splitlines()[-1]
    out = tmp_path / "r.html"
    script = textwrap.dedent(
        f"""
        import json, sys
        from typer.testing import CliRunner
        from dnnlab.cli.main import app
        runner = CliRunner()
        diagnosis = runner.invoke(app, ["diagnose", {run!r}, "--json"])
        assert diagnosis.exit_code == 0, (diagnosis.output, diagnosis.exception)
        layers = [layer["name"] for layer in json.loads(diagnosis.stdout)["layers"]]
        report = runner.invoke(app, ["report", {run!r}, "--out", {str(out)!r}])
        assert report.exit_code == 0, (report.output, report.exception)
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        assert not heavy, heavy
        print(*layers)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dense_1", "output"]
    assert "Layer diagnostics" in out.read_text(encoding="utf-8")

    assert_one_line_error(invoke("diagnose", run, "--steps", "3"), "-o and --steps apply to a spec")
    layers_csv = Path(run) / "layers.csv"
    layers_csv.write_text(layers_csv.read_text(encoding="utf-8") + "1,2,3\n", encoding="utf-8")
    assert_one_line_error(invoke("diagnose", run), "layers.csv: line 6 has 3 cells, expected 13")


def test_version_prints_the_package_version():
    from dnnlab import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dnnlab {__version__}"


def test_help_offers_shell_completion():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["compare", ".", "--format", "xml"], ["--format", "'xml'", "table", "csv", "json", "markdown"]),
        (["mc-predict", "--samples", "0"], ["--samples"]),
        (["train", "--no-such-option"], ["--no-such-option"]),
        (["trian"], ["No such command", "train"]),
    ],
    ids=["bad choice", "out of range", "unknown option", "unknown command"],
)
def test_usage_errors_are_one_line_and_exit_code_2(args, fragments):
    """click's usage block and typer's boxed panel would be several lines."""
    result = invoke(*args)
    line = assert_one_line_error(result, *fragments)
    assert not set(line) & set("│╭╰─"), line
    assert result.stdout == ""
