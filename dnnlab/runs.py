"""The run directory: creation, locking, atomic writes, and reading it back.

A run directory is the record of a training run (see DESIGN.md). Every file in it is
replaced atomically (temporary name, fsync, rename), so a kill at any instant leaves either
the old or the new version of each file. `state.json` is the commit point of an epoch: it
names the checkpoint that goes with it, and `metrics.csv` rows past it are ignored on resume.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")
RUN_FILES = ("run.json", "config.yaml", "metrics.csv")
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide run files from other readers
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def atomic_save_model(model: Any, path: Path) -> None:
    """`model.save` to a temporary `.keras` file beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_link(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` (a hard link swapped in by rename; a copy if
    the file system has no hard links)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        atomic_write_bytes(target, source.read_bytes())
        return
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def is_run_dir(path: Path) -> bool:
    """A folder with run.json, config.yaml or metrics.csv in it (a damaged run still counts)."""
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def metric_mode(metric: str) -> str:
    """'min' for losses and errors (mse, mae, ...), 'max' for accuracy-like metrics."""
    name = metric.lower().removeprefix("val_")
    return "min" if any(word in name for word in LOWER_IS_BETTER) else "max"


class RunDir:
    """One run's directory and the files in it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- paths -------------------------------------------------------------------------
    config = property(lambda self: self.path / "config.yaml")
    run_json = property(lambda self: self.path / "run.json")
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    state_json = property(lambda self: self.path / "state.json")
    model_file = property(lambda self: self.path / "model.keras")
    preprocessing = property(lambda self: self.path / "preprocessing.json")
    summary_txt = property(lambda self: self.path / "summary.txt")
    tensorboard = property(lambda self: self.path / "tensorboard")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.keras")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.keras")

    def epoch_checkpoint(self, epochs_done: int) -> Path:
        return self.checkpoints / f"epoch-{epochs_done:05d}.keras"

    # --- creation and locking ----------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunDir:
        """A new directory `<name>-<YYYYMMDD-HHMMSS>[-N]`; mkdir is atomic, so two commands
        started in the same second get different directories."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for attempt in range(1000):
            suffix = f"-{attempt}" if attempt else ""
            path = runs_dir / f"{name}-{stamp}{suffix}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            run = cls(path)
            run.lock()
            run.checkpoints.mkdir()
            return run
        raise RunDirError(f"{runs_dir}: could not create a run directory for {name!r}")

    @classmethod
    def create_at(cls, path: Path) -> RunDir:
        """A new run directory at exactly `path` (a sweep names its trials); an existing path is
        refused, as mkdir is the claim."""
        path = Path(path)
        try:
            path.mkdir()
        except FileExistsError:
            raise RunDirError(f"{path}: exists already; a new run needs a new directory") from None
        run = cls(path)
        run.lock()
        run.checkpoints.mkdir()
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory; a missing path or a non-run directory is a RunDirError."""
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"{path}: no such run directory")
        if not is_run_dir(path):
            raise RunDirError(f"{path}: not a run directory (no run.json, config.yaml or metrics.csv)")
        return cls(path)

    def lock(self) -> None:
        """Hold an exclusive lock for the life of this process: a second `train` or
        `--resume` on the same directory is refused instead of interleaving writes."""
        import fcntl

        fd = os.open(self.path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunDirError(f"{self.path}: another dnnlab process is using this run") from None
            raise
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- files -------------------------------------------------------------------------
    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{self.path}: {path.name} is missing") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: not valid JSON ({exc.msg})") from None

    def read_run(self) -> dict[str, Any]:
        return self.read_json(self.run_json)

    def write_run(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, record)

    def update_run(self, **changes: Any) -> dict[str, Any]:
        record = self.read_run()
        record.update(changes)
        self.write_run(record)
        return record

    def read_state(self) -> dict[str, Any]:
        return self.read_json(self.state_json)

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_json, state)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv with every finished epoch (small; rewriting keeps it atomic)."""
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        atomic_write_text(self.metrics_csv, buffer.getvalue())

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_csv.exists():
            return []
        with open(self.metrics_csv, newline="", encoding="utf-8") as handle:
            return [
                {key: _parse_number(value) for key, value in row.items()} for row in csv.DictReader(handle)
            ]


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
            record = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("status") == "completed":
            key = (record.get("finished") or "", path)
            if best is None or key > best:
                best = key
    return best[1] if best else None
