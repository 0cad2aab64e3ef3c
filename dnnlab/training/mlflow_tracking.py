"""MLflow glue shared by the live tracking of a training run (`training.mlflow`) and
`dnnlab mlflow-log`: the client, a run's identity and tags, artifacts. MLflow is imported only here
and only when asked for.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dnnlab.errors import DnnlabError, RunDirError
from dnnlab.files.folders import write_refused
from dnnlab.rundir.layout import CONFIG_YAML, RUN_JSON
from dnnlab.rundir.loading import load_run
from dnnlab.rundir.records import RunRecord
from dnnlab.training.hparams import flatten_spec

IDENTITY_TAG = "dnnlab.identity"


INSTALL_HINT = "mlflow-log needs MLflow, an optional extra: pip install 'dnnlab[mlflow]'"


# dnnlab status -> MLflow's terminal run status.
MLFLOW_STATUS = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "interrupted": "KILLED"}


BATCH = 500  # metrics per log_batch call (MLflow accepts up to 1000)


PARAM_BATCH = 100  # MLflow's limit of params per call


PARAM_LENGTH = 500  # the longest param value every MLflow store accepts
KEY = "training.mlflow.tracking_uri"
PROBE_SECONDS = 3.0  # a tracking server that does not take a connection in this long is not there
# MLflow's defaults retry a request 7 times with doubling back-off and wait 120 s for an answer:
# minutes before an error. Used unless the environment sets them.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
MAX_REASON = 300  # characters of MLflow's error message quoted in the one line


_PARAM_CHARACTER = re.compile(r"[^/\w.\- ]")  # what MLflow refuses in a param's name


def spec_params(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened spec with names MLflow accepts: a table's column names (keys under
    data.dataset.columns) may hold any character; those MLflow refuses become `_`, made unique."""
    named: dict[str, Any] = {}
    for key, value in flatten_spec(config).items():
        name = _PARAM_CHARACTER.sub("_", key)
        unique, n = name, 2
        while unique in named:
            unique, n = f"{name}_{n}", n + 1
        named[unique] = value
    return named


def import_mlflow():
    """MLflow's client module, or a DnnlabError that says how to install it."""
    try:
        import mlflow
    except ImportError:
        raise DnnlabError(INSTALL_HINT) from None
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)  # schema migrations on a new store
    return mlflow


# ---------------------------------------------------------------- the tracking store, checked first


def check_tracking_uri(uri: str, key: str = "--tracking-uri") -> None:
    """Refuse in a second, in one line, a store MLflow would retry for minutes or fail in with a
    traceback: a SQLite file or a local store in a folder that cannot be written (MLflow retries
    SQLite for about 100 s), or a server where nothing answers (MLflow retries for minutes). For
    a server, MLflow's own retries and timeout are bounded (HTTP_DEFAULTS) unless the environment
    sets them."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        path = _sqlite_path(uri)
        if path is not None:
            _check_writable(Path(path), key, uri)
    elif scheme == "file" or scheme == "" and uri not in ("databricks", "databricks-uc"):
        _check_writable(Path(parsed.path if scheme else uri) / "meta.yaml", key, uri, create_parents=True)
    elif scheme in ("http", "https"):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        port = parsed.port or (443 if scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname or "localhost", port), timeout=PROBE_SECONDS):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DnnlabError(f"{key} {uri}: no MLflow tracking server answers there ({reason})") from None


def _sqlite_path(uri: str) -> str | None:
    """The file of `sqlite:///relative.db` or `sqlite:////absolute.db`; None for memory."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    path = rest[1:] if rest.startswith("/") else ""
    path = path.split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _check_writable(path: Path, key: str, uri: str, create_parents: bool = False) -> None:
    """The store's file `path` can be created (its folder takes a new file) or is a regular
    file; with `create_parents`, its nearest existing folder takes new folders."""
    if path.exists() and not path.is_file():
        raise DnnlabError(f"{key} {uri}: {path} is not a regular file")
    folder = path.parent
    while create_parents and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DnnlabError(f"{key} {uri}: folder {folder} does not exist; create it or choose another store")
    refused = write_refused(folder)
    if refused:
        raise DnnlabError(f"{key} {uri}: cannot write in {folder} ({refused})")


@contextlib.contextmanager
def store_errors(uri: str, key: str = "--tracking-uri") -> Iterator[None]:
    """An error MLflow raises about the store (refused, unreachable, not a database, a file
    store MLflow 3 no longer opens) as one DnnlabError line."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # MLflow's SQL stores let some through unwrapped

    try:
        yield
    except (MlflowException, SQLAlchemyError, OSError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        text = text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
        raise DnnlabError(f"{key} {uri}: MLflow cannot use this tracking store ({text})") from None


def run_identity(path: Path, record: RunRecord) -> str:
    """What makes a run the same run wherever its folder was copied: name, start, config hash."""
    return f"{path.name}|{record.started}|{record.config_hash}"


def log_artifacts(client, run_id: str, path: Path, figures: dict[str, bytes] | None = None) -> None:
    """The run's record and model as MLflow artifacts, and `figures` (file name -> PNG bytes)."""
    for name in (CONFIG_YAML, RUN_JSON, "model.keras"):
        if (path / name).is_file():
            client.log_artifact(run_id, str(path / name))
    if figures:
        with tempfile.TemporaryDirectory() as folder:
            for name, png in figures.items():
                (Path(folder) / name).write_bytes(png)
                client.log_artifact(run_id, str(Path(folder) / name))


def read_json(path: Path) -> Any:
    from dnnlab.rundir.reading import parse_json, read_run_file

    try:
        return parse_json(read_run_file(path))
    except (OSError, ValueError, RunDirError):
        return None


def experiment_id_of(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def find_tracked_run(client, experiment_id: str, identity: str) -> str | None:
    """The id of the MLflow run tagged with this identity, if one was logged."""
    quoted = identity.replace("'", "\\'")
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{quoted}'", max_results=1
    )
    return found[0].info.run_id if found else None


def millis(stamp: str | None) -> int | None:
    """run.json's local ISO time as MLflow's epoch milliseconds (None when absent)."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    seconds = moment.timestamp()
    return int(seconds * 1000) if math.isfinite(seconds) else None


class LiveRun:
    """The MLflow run that follows a training run (`training.mlflow`): found again by its
    identity when the run resumes, one batch of metrics per committed epoch, and terminated with
    the run's status (failed, interrupted and diverged runs show as such in MLflow)."""

    def __init__(self, client, run_id: str, path: Path):
        self.client, self.run_id, self.path = client, run_id, path

    @classmethod
    def open(cls, path: Path, config: dict[str, Any], tracking_uri: str, experiment: str) -> LiveRun:
        import_mlflow()
        check_tracking_uri(tracking_uri, KEY)
        with store_errors(tracking_uri, KEY):
            return cls._open(path, config, tracking_uri, experiment)

    @classmethod
    def _open(cls, path: Path, config: dict[str, Any], tracking_uri: str, experiment: str) -> LiveRun:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = experiment_id_of(client, experiment)
        record = RunRecord.from_dict(read_json(path / RUN_JSON))
        identity = run_identity(path, record)
        existing = find_tracked_run(client, experiment_id, identity)
        if existing:  # a resumed run continues its MLflow run
            run_id = existing
            client.update_run(run_id, status="RUNNING")
            return cls(client, run_id, path)
        tags = {**run_tags(path, record, config, "running"), IDENTITY_TAG: identity}
        run_id = client.create_run(experiment_id, start_time=millis(record.started), tags=tags).info.run_id
        params = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in spec_params(config).items()]
        for i in range(0, len(params), PARAM_BATCH):
            client.log_batch(run_id, params=params[i : i + PARAM_BATCH])
        return cls(client, run_id, path)

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One metrics.csv row, at step = its epoch."""
        from mlflow.entities import Metric

        step, now_ms = int(row["epoch"]), int(datetime.now().timestamp() * 1000)
        metrics = [
            Metric(k, float(v), now_ms, step)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, status: str) -> None:
        """Tag the final status, log the test scores and artifacts, and end the MLflow run."""
        from mlflow.entities import Metric, RunTag

        run = load_run(self.path)
        now_ms = int(datetime.now().timestamp() * 1000)
        epochs = run.history.get("epoch") or [0]
        tests = [Metric(f"test_{k}", float(v), now_ms, int(epochs[-1])) for k, v in run.test.items()]
        self.client.log_batch(self.run_id, metrics=tests, tags=[RunTag("dnnlab.status", status)])
        log_artifacts(self.client, self.run_id, self.path)
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


def run_tags(path: Path, record: RunRecord, config: dict[str, Any], status: str) -> dict[str, str]:
    versions = record.versions or {}
    return {
        "mlflow.runName": str(record.name or config.get("name") or path.name),
        "dnnlab.status": status,
        "dnnlab.seed": str(config.get("seed")),
        "dnnlab.version": str(versions.get("dnnlab", "")),
        "dnnlab.run_dir": str(path.resolve()),
        "dnnlab.config_hash": str(record.config_hash),
        **{f"dnnlab.versions.{k}": str(v) for k, v in versions.items()},
    }
