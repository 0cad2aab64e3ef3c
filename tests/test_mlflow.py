"""`dnnlab mlflow-log` into a real MLflow SQLite store, read back with MLflow's own client."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import yaml
from helpers import train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.training.hparams import flatten_spec

runner = CliRunner()
SPEC = {
    "name": "ml",
    "seed": 1,
    "data": {
        "dataset": {"type": "synthetic", "shape": [8], "classes": 3, "train": 120, "test": 30},
        "validation": 30,
    },
    "model": {"hidden": [8]},
    "training": {"epochs": 3, "batch_size": 32},
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-runs")
    spec_path = write_spec(root, SPEC)
    return [train_run(spec_path, root / "runs", [f"model.activation={a}"], a) for a in ("relu", "tanh")]


def mlflow_log(*args):
    return runner.invoke(app, ["mlflow-log", *map(str, args)])


def test_without_mlflow_a_one_line_hint_and_exit_2(two_runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    result = mlflow_log(*two_runs)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'dnnlab[mlflow]'" in lines[0], result.stderr
    assert result.stdout == ""


def test_two_runs_logged_twice_are_two_mlflow_runs_with_params_and_epoch_metrics(
    two_runs, tmp_path, monkeypatch
):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = mlflow_log(*two_runs, "--tracking-uri", uri, "--experiment", "act")
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count("logged ") == 2 and "already" not in first.stderr
    again = mlflow_log(two_runs[0].parent, "--tracking-uri", uri, "--experiment", "act")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("already logged") == 2

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("act")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    by_dir = {r.data.tags["dnnlab.run_dir"]: r for r in runs}
    assert set(by_dir) == {str(p.resolve()) for p in two_runs}
    for run_dir in two_runs:
        mlrun = by_dir[str(run_dir.resolve())]
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        assert mlrun.data.params == {k: str(v) for k, v in flatten_spec(config).items()}
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        assert mlrun.data.tags["dnnlab.status"] == "completed" and mlrun.info.status == "FINISHED"
        assert mlrun.data.tags["dnnlab.seed"] == "1"
        assert mlrun.data.tags["dnnlab.version"] == record["versions"]["dnnlab"]
        with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        history = client.get_metric_history(mlrun.info.run_id, "val_loss")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (int(row["epoch"]), pytest.approx(float(row["val_loss"]))) for row in rows
        ]
        assert mlrun.data.metrics["test_accuracy"] == pytest.approx(record["test"]["accuracy"])
        artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
        assert {"config.yaml", "model.keras", "learning_curves.png"} <= artifacts


def test_a_running_run_is_skipped_with_the_reason(two_runs, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    record = json.loads((copy / "run.json").read_text(encoding="utf-8"))
    (copy / "run.json").write_text(json.dumps({**record, "status": "running"}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = mlflow_log(copy, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")
    assert result.exit_code == 0, result.stderr
    assert "skipped" in result.stderr and "only finished runs" in result.stderr


def test_training_mlflow_logs_live_and_mlflow_log_then_adds_nothing(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    spec = {**SPEC, "training": {**SPEC["training"], "mlflow": {"tracking_uri": uri, "experiment": "live"}}}
    run_dir = train_run(write_spec(tmp_path, spec), tmp_path / "runs")
    client = MlflowClient(tracking_uri=uri)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("live").experiment_id])
    assert mlrun.info.status == "FINISHED" and mlrun.data.tags["dnnlab.status"] == "completed"
    history = client.get_metric_history(mlrun.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert mlrun.data.params["training.mlflow.experiment"] == "live"
    assert "model.keras" in {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    result = mlflow_log(run_dir, "--tracking-uri", uri, "--experiment", "live")
    assert result.exit_code == 0 and "already logged" in result.stderr
    assert len(client.search_runs([client.get_experiment_by_name("live").experiment_id])) == 1


def test_a_run_that_fails_shows_as_failed_in_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from dnnlab.training import session

    def broken_fit(self, model, epochs):
        raise RuntimeError("out of memory, say")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session.Session, "fit", broken_fit)
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    spec = {**SPEC, "training": {**SPEC["training"], "mlflow": {"tracking_uri": uri}}}
    with pytest.raises(RuntimeError):
        train_run(write_spec(tmp_path, spec), tmp_path / "runs")
    client = MlflowClient(tracking_uri=uri)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("dnnlab").experiment_id])
    assert mlrun.info.status == "FAILED" and mlrun.data.tags["dnnlab.status"] == "failed"


def test_training_mlflow_without_mlflow_is_a_config_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    spec = {**SPEC, "training": {**SPEC["training"], "mlflow": {}}}
    result = runner.invoke(app, ["check", str(write_spec(tmp_path, spec))])
    assert result.exit_code == 2
    assert "training.mlflow" in result.stderr and "pip install 'dnnlab[mlflow]'" in result.stderr
