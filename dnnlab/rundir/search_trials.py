"""What a search sweep's sweep.json says of its trials, read for compare and report.

A search stops some trials early: `paused` (at a rung, `--resume` may promote it) or `pruned`
(stopped for good). Their run directories say `completed` (they finished every epoch they were
given), so only sweep.json tells them apart from the trials that ran their full budget. The file
is untrusted: anything unreadable or malformed reads as "no search" and never stops compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError
from dnnlab.rundir.reading import parse_json, read_run_file

SWEEP_JSON = "sweep.json"
STUDY_FILE = "study.journal"
STOPPED_EARLY = ("paused", "pruned")


@dataclass(frozen=True)
class SearchTrial:
    """One trial of a search, in the order it was started."""

    id: int
    run: str  # its folder name in the sweep directory
    status: str
    params: dict[str, Any]
    value: float | None  # its best value of the search's metric
    epochs: int  # epochs it trained


@dataclass(frozen=True)
class SearchRecord:
    """A search sweep: its sampler, pruner, metric and goal, and its trials by id."""

    path: Path
    sampler: str
    pruner: str
    metric: str
    goal: str  # minimize | maximize
    trials: list[SearchTrial]

    @property
    def study(self) -> Path:
        return self.path / STUDY_FILE


def read_search(sweep_dir: Path) -> SearchRecord | None:
    """The search recorded in `sweep_dir`'s sweep.json; None when it is no search sweep or the
    file cannot be read or makes no sense."""
    try:
        data = parse_json(read_run_file(Path(sweep_dir) / SWEEP_JSON))
    except (OSError, ValueError, RunDirError):  # missing, unreadable, not JSON: no search
        return None
    search = data.get("search") if isinstance(data, dict) else None
    if not isinstance(search, dict) or not isinstance(data.get("trials"), list):
        return None
    goal = search.get("goal")
    if goal not in ("minimize", "maximize") or not isinstance(search.get("metric"), str):
        return None
    trials = [trial for trial in map(_trial, data["trials"]) if trial is not None]
    return SearchRecord(
        Path(sweep_dir),
        str(search.get("sampler")),
        str(search.get("pruner")),
        search["metric"],
        goal,
        sorted(trials, key=lambda t: t.id),
    )


def _trial(entry: Any) -> SearchTrial | None:
    if not isinstance(entry, dict):
        return None
    trial_id, run, status = entry.get("id"), entry.get("run"), entry.get("status")
    if not (isinstance(trial_id, int) and isinstance(run, str) and isinstance(status, str)):
        return None
    best = entry.get("best") if isinstance(entry.get("best"), dict) else {}
    value = best.get("value")
    value = float(value) if _number(value) and math.isfinite(value) else None
    epochs = entry.get("epochs_done")
    params = entry.get("params") if isinstance(entry.get("params"), dict) else {}
    return SearchTrial(trial_id, run, status, params, value, epochs if isinstance(epochs, int) else 0)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
