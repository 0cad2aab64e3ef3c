"""`dnnlab mlflow-log`: finished run directories as MLflow runs.

Each run becomes one MLflow run: params (the flattened spec), every epoch's metrics at their step
(metrics.csv's 0-based epoch), tags (status, seed, versions, the run directory), artifacts
(config.yaml, model.keras, a learning-curve PNG). A tag holding the run's identity (its folder's
name, start time and config hash) makes logging idempotent: a run found with it is not logged
again. MLflow is an optional extra, imported only here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dnnlab.errors import RunDirError
from dnnlab.results.compare import compare
from dnnlab.results.plots import learning_curves_png
from dnnlab.rundir.layout import RUN_FILES_TEXT, RUN_JSON
from dnnlab.rundir.loading import NOT_METRICS, find_run_dirs, load_run
from dnnlab.rundir.records import RunRecord
from dnnlab.training.mlflow_tracking import (
    BATCH,
    IDENTITY_TAG,
    MLFLOW_STATUS,
    PARAM_BATCH,
    PARAM_LENGTH,
    check_tracking_uri,
    experiment_id_of,
    find_tracked_run,
    import_mlflow,
    log_artifacts,
    millis,
    read_json,
    run_identity,
    run_tags,
    spec_params,
    store_errors,
)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "dnnlab"


@dataclass(frozen=True)
class Logged:
    """What happened to one run directory: logged (new), already there, or skipped (and why)."""

    run_dir: Path
    outcome: str  # "logged" | "already logged" | "skipped"
    mlflow_run_id: str | None = None
    reason: str = ""


def log_runs(
    paths: list[Path], tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str = DEFAULT_EXPERIMENT
) -> list[Logged]:
    """Log the finished runs among `paths` (run or sweep directories) to MLflow."""
    run_dirs, _ = find_run_dirs(paths)
    if not run_dirs:
        raise RunDirError(
            f"No run directories found in {', '.join(map(str, paths[:3]))}: expected folders with "
            f"{RUN_FILES_TEXT}. Pass run or sweep directories, e.g. `dnnlab mlflow-log runs/*`."
        )
    import_mlflow()
    check_tracking_uri(tracking_uri)
    from mlflow.tracking import MlflowClient

    with store_errors(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = experiment_id_of(client, experiment)
        return [_log_one(client, experiment_id, path) for path in run_dirs]


def _log_one(client, experiment_id: str, path: Path) -> Logged:
    from mlflow.entities import Metric, Param, RunTag

    run = load_run(path)
    record = RunRecord.from_dict(read_json(path / RUN_JSON))
    if run.status not in MLFLOW_STATUS:
        return Logged(path, "skipped", reason=f"status {run.status}: only finished runs are logged")
    if run.config is None:
        return Logged(path, "skipped", reason="config.yaml missing or unreadable")
    identity = run_identity(path, record)
    existing = find_tracked_run(client, experiment_id, identity)
    if existing:
        return Logged(path, "already logged", existing)

    tags = {**run_tags(path, record, run.config, run.status), "mlflow.runName": run.name}
    created = client.create_run(experiment_id, start_time=millis(record.started), tags=tags)
    run_id = created.info.run_id
    params = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in spec_params(run.config).items()]
    for i in range(0, len(params), PARAM_BATCH):
        client.log_batch(run_id, params=params[i : i + PARAM_BATCH])
    metrics = _metrics(run, millis(record.started) or 0, Metric)
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    figures = {"learning_curves.png": learning_curves_png(compare([path]))} if run.history else None
    log_artifacts(client, run_id, path, figures)
    # The identity goes last: a run that failed half-way is logged anew next time.
    client.log_batch(run_id, tags=[RunTag(IDENTITY_TAG, identity)])
    client.set_terminated(run_id, MLFLOW_STATUS[run.status], end_time=millis(record.finished))
    return Logged(path, "logged", run_id)


def _metrics(run, start_ms: int, metric_class) -> list:
    """Every metrics.csv column but the epoch index, one value per epoch at step = epoch; the
    test scores at the last step. A non-finite value (a diverged loss) is kept: MLflow stores it."""
    epochs = run.history.get("epoch") or []
    elapsed, clock = 0.0, []  # each epoch's end, from the start and the seconds column
    for seconds in run.history.get("seconds") or []:
        elapsed += seconds if math.isfinite(seconds) else 0.0
        clock.append(start_ms + int(elapsed * 1000))
    out = []
    for name, values in run.history.items():
        if name == "epoch" or (name in NOT_METRICS and name not in ("lr", "seconds")):
            continue
        for index, value in enumerate(values):
            step = int(epochs[index]) if index < len(epochs) else index
            out.append(
                metric_class(name, float(value), clock[index] if index < len(clock) else start_ms, step)
            )
    last = int(epochs[-1]) if epochs else 0
    end = clock[-1] if clock else start_ms
    out += [metric_class(f"test_{k}", float(v), end, last) for k, v in run.test.items()]
    return out


# ---------------------------------------------------------------- live logging while training
