"""The run directory and its typed records: creation, locking, atomic writes, reading it back.

A run directory is the record of a training run (see docs/run-directory.md). Every file in it
is replaced atomically (temporary name, fsync, rename), so a kill at any instant leaves either
the old or the new version of each file. `state.json` is the commit point of an epoch: it
names the checkpoint that goes with it, and `metrics.csv` rows past it are ignored on resume.

run.json and state.json are owned here: `RunRecord` and `TrainState` (each with a `BestRecord`)
are the only code that knows their field names, and `RunDir` the only code that knows the
file names. This module imports neither TensorFlow nor Keras (`dnnlab compare` reads it).
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dnnlab.bounded_files import Refused, read_capped
from dnnlab.errors import RunDirError, WriteError

# `starting`: the directory exists and its setup (config, checkpoint, state.json) is being written.
STATUSES = ("starting", "running", "completed", "failed", "diverged", "interrupted")
# The files of a run directory, named once (RunDir's properties and the readers use these).
RUN_JSON, STATE_JSON, CONFIG_YAML, METRICS_CSV = "run.json", "state.json", "config.yaml", "metrics.csv"
RUN_FILES = (RUN_JSON, CONFIG_YAML, METRICS_CSV)  # any one of them makes a folder a run directory
RUN_FILES_TEXT = f"{RUN_JSON}, {CONFIG_YAML} or {METRICS_CSV}"  # for messages
# A new run is assembled in a hidden folder `.<name>.<random>.starting` beside its final name and
# renamed into place once run.json is in it; readers never take such a folder for a run.
STAGING_SUFFIX = ".starting"
# Version of run.json and state.json as written now; files without `version` are version 1.
# 2: state.json's `callbacks` keyed by each callback's `state_key` instead of its class name.
# 3: state.json records metrics.csv's committed rows and checksum, and the previous commit.
RECORD_VERSION = 3
LEGACY_CALLBACK_KEYS = {"ResumableEarlyStopping": "early_stopping", "PlateauScheduler": "plateau"}
LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "mape", "msle", "crossentropy", "hinge")


def now() -> str:
    # milliseconds: runs finishing within one second still order correctly (mc-predict's latest run)
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reserve_temporary(target: Path, suffix: str) -> Path:
    """A new empty file beside `target` with an unpredictable name (mkstemp), readable by others."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide run files from other readers
    os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _replace_with(write: Any, target: Path, suffix: str = ".tmp") -> None:
    """Write a temporary file beside `target` with `write(path)`, fsync it, rename it into
    place and fsync the directory: readers see the old file or the new one, never half."""
    try:
        tmp = _reserve_temporary(target, suffix)
    except OSError as exc:
        raise WriteError.of(target, exc) from exc
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # frees the space a full disk had let it take
        if isinstance(exc, OSError):
            raise WriteError.of(target, exc) from exc
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    _replace_with(lambda tmp: tmp.write_bytes(data), Path(path))


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """The bytes of an .npz of `arrays` that depend on the arrays alone: np.savez stamps each
    member with the current time, so the same results would give different files."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.asarray(array, order="C"), allow_pickle=False
            )  # 0-d stays 0-d
            archive.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue()
            )
    return buffer.getvalue()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(payload: Any) -> str:
    """The text of every JSON file dnnlab writes."""
    return json.dumps(payload, indent=2) + "\n"


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json_text(payload))


def overwrite_in_place(path: Path, data: bytes) -> None:
    """The last resort on a full disk, where an atomic write's temporary file finds no space: one
    write() over the blocks `path` already holds, padded with spaces to its old length (JSON
    allows them) so that no instant shows a shorter text; a kill cannot split one system call.
    Refused (WriteError) when `data` would need a block the file does not have."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise WriteError.of(path, exc) from exc
    try:
        stat = os.fstat(fd)
        data = data.ljust(stat.st_size, b" ")
        if len(data) > stat.st_blocks * 512:
            raise WriteError.of(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except OSError as exc:
        raise WriteError.of(path, exc) from exc
    finally:
        os.close(fd)


def atomic_save_model(model: Any, path: Path) -> None:
    """`model.save` to a temporary `.keras` file beside `path`, then rename it into place."""
    _replace_with(model.save, Path(path), suffix=".tmp.keras")  # Keras wants the .keras suffix


def atomic_copy(source: Path, target: Path) -> None:
    """Replace `target` with a copy of `source`'s bytes: an independent file (not a hard link),
    so damage to one checkpoint never reaches another."""
    _replace_with(lambda tmp: shutil.copyfile(source, tmp), Path(target))


# The temporary names the helpers above create (mkstemp's 8 characters), and the hard links
# earlier versions made (`.NAME.<16 hex>.link`): a kill can leave them behind; resume removes them.
TEMPORARY_NAME = re.compile(r"^\..+\.([a-z0-9_]{8}\.tmp(\.keras)?|[0-9a-f]{16}\.link)$")


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete the files under `root` named like the helpers' temporary files (never following a
    symbolic link to a folder): what a killed process left, or the space a full disk needs back for
    the run's record. Only call it while holding the run's lock."""
    removed = []
    for folder, _, names in os.walk(root):
        for name in names:
            if TEMPORARY_NAME.match(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# A run's or sweep's name becomes a folder name inside the runs folder: no separators, no dot
# or dash first (no `..`, no option look-alike), and short enough for any file system.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def check_name(name: str, key: str = "--name") -> str:
    """`name` when it can name a folder inside the runs folder, else a one-line RunDirError."""
    if not re.fullmatch(NAME_PATTERN, name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise RunDirError(
            f"{key}: {shown!r} cannot name a run; expected 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def ensure_folder(path: Path, key: str = "--runs-dir") -> Path:
    """Create the folder runs go in (and its parents); a path that cannot be one is a RunDirError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{key}: {path} is a file, expected a folder for run directories") from None
    except OSError as exc:
        raise RunDirError(f"{key}: cannot create {path} ({exc.strerror})") from None
    try:  # a folder may exist and still refuse new entries (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".dnnlab-probe-", dir=path))
    except OSError as exc:
        raise RunDirError(f"{key}: cannot create run directories in {path} ({exc.strerror})") from None
    return path


def check_output_folder(path: Path, key: str) -> None:
    """Refuse an output file's path before any work: its folder must exist and take new files
    (a probe file is created and removed), so /proc or a read-only mount fails in one line."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise RunDirError(f"{key} {path}: folder {folder} does not exist; create it or choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dnnlab-probe-", dir=folder)
    except OSError as exc:
        raise RunDirError(f"{key} {path}: cannot write in {folder} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_new_run(runs_dir: Path, name: str | None, spec_name: str) -> None:
    """What a new run needs from its arguments (a usable name, a folder it can be created in),
    checked before the data is loaded, so a bad argument costs nothing and leaves nothing."""
    check_name(name or spec_name, "--name" if name else "name")
    ensure_folder(runs_dir)


def new_stamped_dir(parent: Path, name: str) -> Path:
    """A new folder `parent/<name>-<YYYYMMDD-HHMMSS>[-N]`. mkdir is atomic, so two commands
    started in the same second get different folders."""
    parent = ensure_folder(parent)
    check_name(name)
    for path in _stamped_names(parent, name):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"{parent}: cannot create {path.name} ({exc.strerror})") from None
        return path
    raise RunDirError(f"{parent}: could not create a directory for {name!r}")


# Run directories may come from anywhere (copied, downloaded, damaged), so their files are read
# with a cap: a real run.json is a few kilobytes and metrics.csv about 150 bytes an epoch, so
# 16 MiB holds 100,000 epochs.
MAX_RUN_FILE_BYTES = 16 << 20


class RunFileUnreadable(RunDirError):
    """A run file that cannot be read: not a regular file, too large, or not UTF-8 text.
    `reason` says why without the path, for the notes of compare and report."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_run_file(path: Path, limit: int = MAX_RUN_FILE_BYTES) -> str:
    """The UTF-8 text of a run file; FileNotFoundError when it is missing, RunFileUnreadable when
    it is not a regular file (a FIFO would block), is over `limit` bytes or is not UTF-8."""
    path = Path(path)
    try:
        raw = read_capped(path, limit)
    except Refused as refused:
        if refused.size is not None:
            reason = f"{refused.size:,} bytes, more than the {limit:,} a run file may have"
            raise RunFileUnreadable(path, reason) from None
        # compare's notes name the problem; a special file's kind (a FIFO, a device) adds nothing there
        reason = refused.reason if refused.reason == "not a regular file" else str(refused)
        raise RunFileUnreadable(path, reason) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileUnreadable(path, "not UTF-8 text") from None


def parse_json(text: str) -> Any:
    """json.loads, with nesting too deep for the parser (RecursionError) a ValueError like any
    other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def is_run_dir(path: Path) -> bool:
    """A folder with any of RUN_FILES in it (a damaged run still counts); not a run being staged."""
    if is_staging(path):
        return False
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def is_staging(path: Path) -> bool:
    """The hidden folder a new run is assembled in before it is renamed into place."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(STAGING_SUFFIX)


def _stamped_names(parent: Path, name: str) -> Iterator[Path]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        yield parent / f"{name}-{stamp}{f'-{attempt}' if attempt else ''}"


def metric_mode(metric: str) -> str:
    """'min' for losses and errors (mse, mae, ...), 'max' for accuracy-like metrics."""
    name = metric.lower().removeprefix("val_")
    return "min" if any(word in name for word in LOWER_IS_BETTER) else "max"


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` improves on `best` by more than `min_delta` (Keras's rule: strictly, so
    a tie keeps the earlier epoch). No best yet: any value is better.

    The one rule for "improved" in dnnlab: early stopping, plateau scheduling, the best
    checkpoint and compare's ranking all decide through it.
    """
    if best is None:
        return True
    if mode == "min":
        return value + abs(min_delta) < best
    if mode == "max":
        return value - abs(min_delta) > best
    raise ValueError(f"mode must be 'min' or 'max'; received {mode!r}")


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


def _version(data: dict[str, Any]) -> int:
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
    """Transfer learning's progress: the reused layers, and whether they are trainable yet."""

    layers: list[str]
    unfrozen: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TransferState | None:
        if not isinstance(data, dict):
            return None
        return cls(list(data.get("layers") or []), bool(data.get("unfrozen")))


@dataclass
class TrainState:
    """state.json: what resume needs beyond the checkpoint it names.

    `execution` is the run's execution plan (dnnlab.execution.Execution.to_dict), `callbacks`
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
        if _version(data) < 2:
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
            extra=_extra(cls, data),
        )


class RunDir:
    """One run's directory and the files in it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- paths -------------------------------------------------------------------------
    config = property(lambda self: self.path / CONFIG_YAML)
    run_json = property(lambda self: self.path / RUN_JSON)
    metrics_csv = property(lambda self: self.path / METRICS_CSV)
    layers_csv = property(lambda self: self.path / "layers.csv")
    state_json = property(lambda self: self.path / STATE_JSON)
    model_file = property(lambda self: self.path / "model.keras")
    preprocessing = property(lambda self: self.path / "preprocessing.json")
    summary_txt = property(lambda self: self.path / "summary.txt")
    tensorboard = property(lambda self: self.path / "tensorboard")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.keras")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.keras")
    early_stopping_best = property(lambda self: self.path / "checkpoints" / "early_stopping_best.keras")
    lock_file = property(lambda self: self.path / ".lock")

    def epoch_checkpoint(self, epochs_done: int) -> Path:
        return self.checkpoints / f"epoch-{epochs_done:05d}.keras"

    # --- creation and locking ----------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: Path, name: str, record: RunRecord) -> RunDir:
        """A new directory `<name>-<YYYYMMDD-HHMMSS>[-N]` in `runs_dir`, locked, whose first file
        is run.json (`record`, status `starting`)."""
        parent = ensure_folder(runs_dir)
        check_name(name)
        return cls._staged(parent, name, record, _stamped_names(parent, name))

    @classmethod
    def create_at(cls, path: Path, record: RunRecord) -> RunDir:
        """`create` at exactly `path` (a sweep names its trials); an existing path is refused."""
        path = Path(path)
        return cls._staged(path.parent, path.name, record, iter([path]))

    @classmethod
    def _staged(cls, parent: Path, name: str, record: RunRecord, names: Iterator[Path]) -> RunDir:
        """Assemble the run in a hidden staging folder (lock, run.json, checkpoints/) and rename
        it to the first free name: a kill at any instant leaves no run or a run with run.json."""
        staging = parent / f".{name}.{os.urandom(6).hex()}{STAGING_SUFFIX}"
        try:
            staging.mkdir()  # unlike mkdtemp's 0700, the permissions a run directory always had
        except OSError as exc:
            raise WriteError.of(parent, exc) from exc
        run = cls(staging)
        try:
            run.lock()
            run.write_record(record)
            run.checkpoints.mkdir()
            for path in names:
                # rename replaces only an empty directory; another run's staging holds run.json
                if not path.exists() and _rename_dir(staging, path):
                    run.path = path
                    return run
            raise RunDirError(f"{parent / name}: exists already; a new run needs a new directory")
        except BaseException as exc:
            run.unlock()
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise WriteError.of(parent / name, exc) from exc
            raise

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory; a missing path or a non-run directory is a RunDirError."""
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"{path}: no such run directory")
        if not is_run_dir(path):
            raise RunDirError(f"{path}: not a run directory (no {RUN_FILES_TEXT})")
        return cls(path)

    def lock(self) -> None:
        """Hold an exclusive lock until `unlock`: a second `train` or `--resume` on the same
        directory is refused instead of interleaving writes."""
        self._lock_fd = acquire_lock(self.lock_file, f"{self.path}: another dnnlab process is using this run")

    def unlock(self) -> None:
        """Release the lock and remove `.lock` (removed while still held, so no process can
        lock the old file and another the new one at the same time; see `lock`)."""
        if self._lock_fd is not None:
            release_lock(self.lock_file, self._lock_fd)
            self._lock_fd = None

    # --- files -------------------------------------------------------------------------
    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            return parse_json(read_run_file(path))
        except FileNotFoundError:
            raise RunDirError(f"{self.path}: {path.name} is missing") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise RunDirError(f"{path}: not valid JSON ({exc})") from None

    def _read_record_file(self, path: Path) -> dict[str, Any]:
        data = self.read_json(path)
        if not isinstance(data, dict):
            raise RunDirError(f"{path}: expected a JSON object")
        if _version(data) > RECORD_VERSION:
            raise RunDirError(
                f"{path}: written by a newer dnnlab (record version {_version(data)}; this one "
                f"reads up to {RECORD_VERSION}); upgrade dnnlab to use this run"
            )
        return data

    def read_record(self) -> RunRecord:
        return RunRecord.from_dict(self._read_record_file(self.run_json))

    def write_record(self, record: RunRecord) -> None:
        atomic_write_json(self.run_json, record.to_dict())

    def update_record(self, **changes: Any) -> RunRecord:
        """Change some fields of run.json (read, replace, write atomically)."""
        record = replace(self.read_record(), **changes)
        self.write_record(record)
        return record

    def update_record_in_place(self, **changes: Any) -> RunRecord:
        """`update_record` for a full disk: run.json rewritten over its own blocks (see
        overwrite_in_place), so that a failure can still be recorded."""
        record = replace(self.read_record(), **changes)
        overwrite_in_place(self.run_json, json_text(record.to_dict()).encode("utf-8"))
        return record

    def read_state(self, monitor: str = "val_loss") -> TrainState:
        return TrainState.from_dict(self._read_record_file(self.state_json), monitor)

    def write_state(self, state: TrainState) -> None:
        atomic_write_json(self.state_json, state.to_dict())

    def write_metrics(self, rows: list[dict[str, Any]]) -> str:
        """Rewrite metrics.csv with every finished epoch (small; rewriting keeps it atomic);
        returns the checksum state.json records (see `metrics_sha256`)."""
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        data = buffer.getvalue().encode("utf-8")
        atomic_write_bytes(self.metrics_csv, data)
        return hashlib.sha256(data).hexdigest()

    def metrics_sha256(self, rows: int) -> str | None:
        """The SHA-256 of metrics.csv's header and first `rows` lines (a row written past the last
        commit is not part of it); None when the file is missing or has fewer lines."""
        try:
            lines = self.metrics_csv.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return None
        if len(lines) < rows + 1:
            return None
        return hashlib.sha256(b"".join(lines[: rows + 1])).hexdigest()

    def check_own_folders(self) -> None:
        """Refuse a run whose checkpoints/ or tensorboard/ is a symbolic link: training writes
        and deletes files in them, which must stay inside the run directory."""
        for folder in (self.checkpoints, self.tensorboard):
            if folder.is_symlink():
                raise RunDirError(
                    f"{folder}: a symbolic link (to {os.readlink(folder)}); dnnlab writes and deletes "
                    f"files there, so it must be a folder inside the run. Replace the link with a folder."
                )

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_csv.exists():
            return []
        with open(self.metrics_csv, newline="", encoding="utf-8") as handle:
            return [
                {key: _parse_number(value) for key, value in row.items()} for row in csv.DictReader(handle)
            ]


def _rename_dir(source: Path, target: Path) -> bool:
    """Rename `source` to `target`; False when `target` was taken meanwhile."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
            return False
        raise
    _fsync_dir(target.parent)
    return True


def acquire_lock(lock_file: Path, busy: str) -> int:
    """An exclusive flock on `lock_file` (created if missing), held until `release_lock`; a
    RunDirError saying `busy` when another process holds it."""
    import fcntl

    while True:
        fd = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunDirError(busy) from None
            raise
        # release_lock removes the file: a lock taken on a file already removed guards nothing
        if _same_file(fd, lock_file):
            return fd
        os.close(fd)


def release_lock(lock_file: Path, fd: int) -> None:
    """Remove `lock_file` while still holding it (so no two processes can hold the old file and a
    new one at once), then release it."""
    lock_file.unlink(missing_ok=True)
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest exact round trip
    return value


def _parse_number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def host() -> str:
    return socket.gethostname()


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Run directories directly below `root`."""
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if is_run_dir(child):
                yield child


def latest_completed(root: Path) -> Path | None:
    """The most recently finished completed run under `root` (for `mc-predict`)."""
    best: tuple[str, Path] | None = None
    for path in iter_run_dirs(root):
        try:
            record = RunRecord.from_dict(parse_json(read_run_file(path / RUN_JSON)))
        except (OSError, ValueError, RunDirError):
            continue
        if record.status == "completed":
            key = (record.finished or "", path)
            if best is None or key > best:
                best = key
    return best[1] if best else None
