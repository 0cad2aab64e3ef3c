"""run.json and state.json as typed records: `RunRecord` and `TrainState` (each with a
`BestRecord`) are the only code that knows their field names.
"""

from __future__ import annotations

import datetime as dt
import math
import socket
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dnnlab.rundir.better import is_better, metric_mode

# Version of run.json and state.json as written now; files without `version` are version 1.
# 2: state.json's `callbacks` keyed by each callback's `state_key` instead of its class name.
# 3: state.json records metrics.csv's committed rows and checksum, and the previous commit.
RECORD_VERSION = 3


LEGACY_CALLBACK_KEYS = {"ResumableEarlyStopping": "early_stopping", "PlateauScheduler": "plateau"}


def now() -> str:
    # milliseconds: runs finishing within one second still order correctly (mc-predict's latest run)
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def float_or_none(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, damaged, nan, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf); nan is a ValueError
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- the records ---------------------------------------------------------------------------
#
# from_dict reads what a file holds, tolerantly: a missing or damaged field becomes None (or
# its empty default), never an error, so `compare` can show a damaged run and an older file
# (without `version`) still reads, upgraded to this version. Fields this version does not know
# are kept in `extra` and written back unchanged.


@dataclass(frozen=True)
class BestRecord:
    """The best epoch so far of the monitored metric; `epoch` counts from 0, as metrics.csv."""

    metric: str
    mode: str  # "min" or "max"
    value: float | None = None
    epoch: int | None = None

    @classmethod
    def none_yet(cls, metric: str) -> BestRecord:
        """The record of a run before its first finished epoch."""
        return cls(metric, metric_mode(metric))

    def improved_by(self, value: float) -> bool:
        return is_better(value, self.value, self.mode)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BestRecord | None:
        """None when `data` is not a record with a metric name."""
        if not isinstance(data, dict) or not isinstance(data.get("metric"), str):
            return None
        metric = data["metric"]
        mode = data.get("mode") if data.get("mode") in ("min", "max") else metric_mode(metric)
        return cls(metric, mode, float_or_none(data.get("value")), int_or_none(data.get("epoch")))


def _extra(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k not in known}


def version_of(data: dict[str, Any]) -> int:
    return int_or_none(data.get("version")) or 1


@dataclass
class RunRecord:
    """run.json: what the run is, how far it got, and its best epoch."""

    name: str | None
    status: str
    started: str | None = None
    finished: str | None = None
    epochs_done: int = 0
    epochs_planned: int | None = None
    best: BestRecord | None = None
    seed: int | None = None
    config_hash: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    command: list[str] = field(default_factory=list)
    wall_seconds: float | None = None
    test: dict[str, float] | None = None  # {loss, metrics...} of the kept model on the test split
    version: int = RECORD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data["best"] = self.best.to_dict() if self.best else None
        if self.test is None:  # absent, as before, for runs not (yet) scored on a test split
            del data["test"]
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        data = data if isinstance(data, dict) else {}
        versions, command = data.get("versions"), data.get("command")
        return cls(
            name=_str_or_none(data.get("name")),
            status=_str_or_none(data.get("status")) or "unknown",
            started=_str_or_none(data.get("started")),
            finished=_str_or_none(data.get("finished")),
            epochs_done=int_or_none(data.get("epochs_done")) or 0,
            epochs_planned=int_or_none(data.get("epochs_planned")),
            best=BestRecord.from_dict(data.get("best")),
            seed=int_or_none(data.get("seed")),
            config_hash=_str_or_none(data.get("config_hash")),
            versions=versions if isinstance(versions, dict) else {},
            host=_str_or_none(data.get("host")),
            command=command if isinstance(command, list) else [],
            wall_seconds=float_or_none(data.get("wall_seconds")),
            test=_scores_or_none(data.get("test")),
            extra=_extra(cls, data),
        )


def _scores_or_none(data: Any) -> dict[str, float] | None:
    """A {name: number} mapping with its finite numbers; None when there is none."""
    if not isinstance(data, dict):
        return None
    scores = {k: float_or_none(v) for k, v in data.items() if isinstance(k, str)}
    scores = {k: v for k, v in scores.items() if v is not None}
    return scores or None


@dataclass(frozen=True)
class TransferState:
    """Transfer learning's progress: the reused layers, whether they are trainable yet, and the
    run they came from (`source`: its path as the spec gives it, name, task and config hash)."""

    layers: list[str]
    unfrozen: bool
    source: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.source is None:  # absent, as before, in runs that predate the record
            del data["source"]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> TransferState | None:
        if not isinstance(data, dict):
            return None
        source = data.get("source")
        return cls(
            list(data.get("layers") or []),
            bool(data.get("unfrozen")),
            source if isinstance(source, dict) else None,
        )


@dataclass(frozen=True)
class PretrainState:
    """Greedy pretraining's progress: the `phase` in progress (1 for the first hidden dense layer;
    one past the last when every phase is done), the epochs of it committed, its autoencoder's
    checkpoint (None before the phase's start is committed), and pretrain.csv's committed rows
    and checksum, as `metrics_rows` and `metrics_sha256` describe metrics.csv."""

    phase: int
    epochs_done: int
    checkpoint: str | None
    rows: int
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PretrainState | None:
        if not isinstance(data, dict):
            return None
        return cls(
            phase=int_or_none(data.get("phase")) or 1,
            epochs_done=int_or_none(data.get("epochs_done")) or 0,
            checkpoint=_str_or_none(data.get("checkpoint")),
            rows=int_or_none(data.get("rows")) or 0,
            sha256=_str_or_none(data.get("sha256")),
        )


@dataclass
class TrainState:
    """state.json: what resume needs beyond the checkpoint it names.

    `execution` is the run's execution plan (dnnlab.training.execution.Execution.to_dict), `callbacks`
    each resumable callback's state under its `state_key`. `metrics_rows` and `metrics_sha256`
    describe metrics.csv as this commit wrote it, so resume can tell a damaged file; `previous` is
    the commit before this one (without its own `previous`), what resume falls back to when this
    commit's checkpoint does not load. The three are None in files of older versions.
    """

    epochs_done: int
    checkpoint: str
    execution: dict[str, Any]
    best: BestRecord
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    transfer: TransferState | None = None
    metrics_rows: int | None = None
    metrics_sha256: str | None = None
    previous: dict[str, Any] | None = None
    pretrain: PretrainState | None = None  # training.pretrain: absent in runs without it
    version: int = RECORD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "epochs_done": self.epochs_done,
            "checkpoint": self.checkpoint,
            "execution": self.execution,
            "best": self.best.to_dict(),
            "callbacks": self.callbacks,
            "wall_seconds": self.wall_seconds,
        }
        if self.transfer is not None:  # absent, as before, for runs without transfer learning
            data["transfer"] = self.transfer.to_dict()
        data["metrics_rows"], data["metrics_sha256"] = self.metrics_rows, self.metrics_sha256
        if self.previous is not None:  # absent at epoch 0: no commit before it
            data["previous"] = self.previous
        if self.pretrain is not None:
            data["pretrain"] = self.pretrain.to_dict()
        return {**data, "version": self.version, **self.extra}

    def without_previous(self) -> dict[str, Any]:
        """This commit as the next one records it in `previous` (one level deep)."""
        data = self.to_dict()
        data.pop("previous", None)
        return data

    @classmethod
    def from_dict(cls, data: Any, monitor: str = "val_loss") -> TrainState:
        """`monitor` names the metric of an empty best record when the file has none."""
        data = data if isinstance(data, dict) else {}
        callbacks = data.get("callbacks") if isinstance(data.get("callbacks"), dict) else {}
        if version_of(data) < 2:
            callbacks = {LEGACY_CALLBACK_KEYS.get(k, k): v for k, v in callbacks.items()}
        return cls(
            epochs_done=int_or_none(data.get("epochs_done")) or 0,
            checkpoint=_str_or_none(data.get("checkpoint")) or "",
            execution=data.get("execution") if isinstance(data.get("execution"), dict) else {},
            best=BestRecord.from_dict(data.get("best")) or BestRecord.none_yet(monitor),
            callbacks=callbacks,
            wall_seconds=float_or_none(data.get("wall_seconds")) or 0.0,
            transfer=TransferState.from_dict(data.get("transfer")),
            metrics_rows=int_or_none(data.get("metrics_rows")),
            metrics_sha256=_str_or_none(data.get("metrics_sha256")),
            previous=data.get("previous") if isinstance(data.get("previous"), dict) else None,
            pretrain=PretrainState.from_dict(data.get("pretrain")),
            extra=_extra(cls, data),
        )


def host() -> str:
    return socket.gethostname()
