"""`RunDir`: one run's directory and the files in it; creation through a staging folder,
locking, the epoch commit's records. No TensorFlow or Keras (`dnnlab compare` reads it).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError, WriteError
from dnnlab.files.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    fsync_dir,
    json_text,
    overwrite_in_place,
)
from dnnlab.files.folders import ensure_folder
from dnnlab.rundir.layout import (
    CONFIG_YAML,
    METRICS_CSV,
    RUN_FILES_TEXT,
    RUN_JSON,
    STAGING_SUFFIX,
    STATE_JSON,
    check_name,
    is_run_dir,
    stamped_names,
)
from dnnlab.rundir.lock import acquire_lock, release_lock
from dnnlab.rundir.reading import parse_json, read_run_file
from dnnlab.rundir.records import RECORD_VERSION, RunRecord, TrainState, version_of


class RunDir:
    """One run's directory and the files in it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- paths -------------------------------------------------------------------------
    config = property(lambda self: self.path / CONFIG_YAML)
    run_json = property(lambda self: self.path / RUN_JSON)
    metrics_csv = property(lambda self: self.path / METRICS_CSV)
    pretrain_csv = property(lambda self: self.path / "pretrain.csv")  # training.pretrain's phases
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
    def create(cls, runs_dir: Path, name: str, record: RunRecord, config: str = "") -> RunDir:
        """A new directory `<name>-<YYYYMMDD-HHMMSS>[-N]` in `runs_dir`, locked, whose first file
        is run.json (`record`, status `starting`)."""
        parent = ensure_folder(runs_dir)
        check_name(name)
        return cls._staged(parent, name, record, stamped_names(parent, name), config)

    @classmethod
    def create_at(cls, path: Path, record: RunRecord, config: str = "") -> RunDir:
        """`create` at exactly `path` (a sweep names its trials); an existing path is refused."""
        path = Path(path)
        return cls._staged(path.parent, path.name, record, iter([path]), config)

    @classmethod
    def _staged(
        cls, parent: Path, name: str, record: RunRecord, names: Iterator[Path], config: str = ""
    ) -> RunDir:
        """Assemble the run in a hidden staging folder (lock, run.json, config.yaml when given,
        checkpoints/) and rename it to the first free name: a kill or an interrupt at any instant
        leaves no run, or a run with run.json and its config.yaml that `--resume` sets up again."""
        staging = parent / f".{name}.{os.urandom(6).hex()}{STAGING_SUFFIX}"
        try:
            staging.mkdir()  # unlike mkdtemp's 0700, the permissions a run directory always had
        except OSError as exc:
            raise WriteError.of(parent, exc) from exc
        run = cls(staging)
        try:
            run.lock()
            run.write_record(record)
            if config:
                atomic_write_text(run.config, config)
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
        if version_of(data) > RECORD_VERSION:
            raise RunDirError(
                f"{path}: written by a newer dnnlab (record version {version_of(data)}; this one "
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
        return _write_rows(self.metrics_csv, rows)

    def metrics_sha256(self, rows: int) -> str | None:
        """The SHA-256 of metrics.csv's header and first `rows` lines (a row written past the last
        commit is not part of it); None when the file is missing or has fewer lines."""
        return _rows_sha256(self.metrics_csv, rows)

    def write_pretrain_rows(self, rows: list[dict[str, Any]]) -> str:
        """pretrain.csv, as write_metrics writes metrics.csv: one row per pretraining epoch."""
        return _write_rows(self.pretrain_csv, rows)

    def pretrain_sha256(self, rows: int) -> str | None:
        return _rows_sha256(self.pretrain_csv, rows)

    def read_pretrain_rows(self) -> list[dict[str, Any]]:
        return _read_rows(self.pretrain_csv)

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
        return _read_rows(self.metrics_csv)


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> str:
    """A CSV of `rows` (the columns in order of first appearance), replaced atomically; returns
    its SHA-256."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    data = buffer.getvalue().encode("utf-8")
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _rows_sha256(path: Path, rows: int) -> str | None:
    """The SHA-256 of a CSV's header and first `rows` lines; None when it is missing or shorter."""
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except FileNotFoundError:
        return None
    if len(lines) < rows + 1:
        return None
    return hashlib.sha256(b"".join(lines[: rows + 1])).hexdigest()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: _parse_number(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _rename_dir(source: Path, target: Path) -> bool:
    """Rename `source` to `target`; False when `target` was taken meanwhile."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
            return False
        raise
    fsync_dir(target.parent)
    return True


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
