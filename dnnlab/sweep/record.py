"""The sweep directory: `sweep.yaml` (the resolved definition), `sweep.json` (what happened) and
one ordinary run directory per trial. Every file is replaced atomically, as in a run directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dnnlab.errors import RunDirError
from dnnlab.files.atomic import atomic_write_text
from dnnlab.files.safe_yaml import read_yaml_file
from dnnlab.rundir.layout import new_stamped_dir
from dnnlab.rundir.lock import acquire_lock, release_lock
from dnnlab.rundir.reading import parse_json, read_run_file
from dnnlab.rundir.records import now
from dnnlab.sweep.definition import Sweep, read_sweep_file
from dnnlab.sweep.record_checks import check_record
from dnnlab.sweep.rungs import Config
from dnnlab.sweep.trials import Trial

SWEEP_YAML = "sweep.yaml"
SWEEP_JSON = "sweep.json"
VERSION = 1


@dataclass
class SweepRecord:
    """sweep.json: the sweep's name, axes, seeds, status and every trial."""

    name: str
    status: str  # running, completed, failed (a trial failed or diverged), interrupted
    axes: dict[str, Any]  # dotted key -> values, or a distribution's text
    seeds: list[int] | None
    mode: str  # grid, random or search
    varying: list[str]  # the keys whose values differ between trials (directory names use them)
    started: str
    finished: str | None = None
    command: list[str] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    version: int = VERSION
    search: dict[str, Any] | None = None  # a search's settings, its metric and goal resolved
    configs: list[Config] = field(default_factory=list)  # a search's suggested configurations
    auto_seeds: dict[str, Any] | None = None  # `--seeds auto`: {max, rounds, stop} (see auto_seeds)

    def to_dict(self) -> dict[str, Any]:
        searched = {"search": self.search, "configs": [c.to_dict() for c in self.configs]}
        return {
            "version": self.version,
            "name": self.name,
            "status": self.status,
            "mode": self.mode,
            "axes": self.axes,
            "seeds": self.seeds,
            "varying": self.varying,
            "started": self.started,
            "finished": self.finished,
            "command": self.command,
            "trials": [t.to_dict() for t in self.trials],
            **(searched if self.search else {}),
            **({"auto_seeds": self.auto_seeds} if self.auto_seeds is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepRecord:
        lists = ("trials", "configs")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in lists}
        return cls(
            **fields,
            trials=[Trial.from_dict(t) for t in data.get("trials", [])],
            configs=[Config.from_dict(c) for c in data.get("configs", [])],
        )

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        return counts


def new_record(sweep: Sweep, trials: list[Trial], varying: list[str], command: list[str]) -> SweepRecord:
    return SweepRecord(
        name=sweep.name,
        status="running",
        axes={a.key: a.to_yaml() for a in sweep.axes},
        seeds=list(sweep.seeds) if sweep.seeds is not None else None,
        mode="search" if sweep.search else "grid" if sweep.random_trials is None else "random",
        varying=varying,
        started=now(),
        command=command,
        trials=trials,
    )


class SweepDir:
    """One sweep's directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    sweep_yaml = property(lambda self: self.path / SWEEP_YAML)
    sweep_json = property(lambda self: self.path / SWEEP_JSON)

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> SweepDir:
        """A new directory `runs_dir/<name>-<YYYYMMDD-HHMMSS>[-N]` (mkdir is the claim)."""
        return cls(new_stamped_dir(runs_dir, name))

    @classmethod
    def open(cls, path: Path) -> SweepDir:
        path = Path(path)
        if not (path / SWEEP_YAML).is_file() or not (path / SWEEP_JSON).is_file():
            raise RunDirError(f"{path}: not a sweep directory (no {SWEEP_YAML} and {SWEEP_JSON})")
        for name in (SWEEP_YAML, SWEEP_JSON, ".lock"):  # read, replaced or created by the driver
            if (path / name).is_symlink():
                raise RunDirError(
                    f"{path / name}: a symbolic link; a sweep's own files must be files inside its "
                    "directory. Replace the link with the file."
                )
        return cls(path)

    def lock(self) -> None:
        """Held by the driver: a second `sweep --resume` of the same directory is refused."""
        if (self.path / ".lock").is_symlink():  # opened with O_CREAT: a link would create its target
            raise RunDirError(f"{self.path / '.lock'}: a symbolic link; remove it and resume")
        self._lock_fd = acquire_lock(
            self.path / ".lock", f"{self.path}: another dnnlab process is running this sweep"
        )

    def unlock(self) -> None:
        if self._lock_fd is not None:
            release_lock(self.path / ".lock", self._lock_fd)
            self._lock_fd = None

    def write_definition(self, sweep: Sweep) -> None:
        atomic_write_text(self.sweep_yaml, yaml.safe_dump(sweep.to_dict(), sort_keys=False))

    def read_definition(self) -> Sweep:
        """sweep.yaml, which dnnlab writes with the spec inline: a `spec:` path there would read
        a file from anywhere, so it is refused."""
        raw = read_yaml_file(self.sweep_yaml)
        if isinstance(raw, dict) and not isinstance(raw.get("spec"), dict):
            raise RunDirError(
                f"{self.sweep_yaml}: spec: expected the spec inline, as dnnlab writes it; "
                "sweep.yaml was edited or damaged"
            )
        return read_sweep_file(self.sweep_yaml)

    def write_record(self, record: SweepRecord) -> None:
        atomic_write_text(self.sweep_json, record_text(record.to_dict()))

    def read_record(self) -> SweepRecord:
        """sweep.json, checked as untrusted input (see record_checks)."""
        try:
            data = parse_json(read_run_file(self.sweep_json))
        except ValueError as exc:
            raise RunDirError(f"{self.sweep_json}: not a readable sweep record ({exc})") from None
        except OSError as exc:
            raise RunDirError(f"{self.sweep_json}: cannot be read ({exc.strerror})") from None
        check_record(data, self.sweep_json, VERSION)
        return SweepRecord.from_dict(data)


def record_text(record: dict) -> str:
    """sweep.json's text: one line per trial and per configuration (readable, and a diff shows
    which changed), each line written by json's C encoder. The driver rewrites the file after
    every trial event (334 times in a 45-trial ASHA search), and CPU it spends is taken from the
    workers on a small machine: that search's final record takes 0.7 ms this way, 1.8 ms indented
    throughout (json's Python encoder)."""
    lines = []
    for key, value in record.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            items = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
