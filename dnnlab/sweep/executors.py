"""Where trials run: a registry from executor name to the module whose `run` runs them.

Every executor module provides `run(sweep_dir, trials, jobs, threads, address, on_trial_event)`: it
takes each trial (a sweep.json entry) from `trials` (a list, or a feed: see `Feed`) when it can
start one, runs it by calling `dnnlab.sweep.worker.run_trial(sweep_dir, trial)` somewhere, calls
`on_trial_event("started", trial, None)` and `on_trial_event("finished", trial, outcome)` in the
calling thread, stops when the feed has nothing to start and nothing runs, and on KeyboardInterrupt stops its
trials (saved, marked interrupted), reports them and raises again. Adding an executor is adding
one module here.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from dnnlab.errors import ConfigError

EXECUTORS = {
    "local": "dnnlab.sweep.worker",  # warm worker processes on this machine
    "ray": "dnnlab.sweep.ray_executor",  # Ray tasks on a cluster (--address)
}


def get(name: str) -> Callable:
    """The `run` function of executor `name`."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name}: expected one of {', '.join(EXECUTORS)}")
    try:
        module = importlib.import_module(EXECUTORS[name])
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--executor {name}: not available in this installation ({exc})") from None
    return module.run


Preference = Callable[[dict[str, Any]], int]  # a trial's rank for the worker taking it: lowest first


class Feed(Protocol):
    """Trials handed out one at a time as workers become free: a search decides its next trial
    from the results reported so far (with one worker, the same results in the same order)."""

    def ready(self) -> bool:
        """Whether `next` has a trial now (asks nothing: an executor calls it before it starts a
        worker)."""

    def next(self, prefer: Preference | None = None) -> dict[str, Any] | None:
        """The next trial to start, or None while none can start. `prefer` ranks the trials that
        could start now for the worker that will take it (see worker.run); a feed whose order
        does not matter takes the lowest-ranked, else it may ignore it."""


class ListFeed:
    """A fixed list of trials (a grid, random draws), in order unless the worker prefers others."""

    def __init__(self, trials: list[dict[str, Any]]):
        self.pending = deque(trials)

    def ready(self) -> bool:
        return bool(self.pending)

    def next(self, prefer: Preference | None = None) -> dict[str, Any] | None:
        return take(self.pending, prefer)


def take(pending: deque[dict[str, Any]], prefer: Preference | None) -> dict[str, Any] | None:
    """Remove and return the first of the lowest-ranked pending trials (the first without `prefer`)."""
    if not pending:
        return None
    if prefer is None:
        return pending.popleft()
    chosen = min(range(len(pending)), key=lambda index: prefer(pending[index]))
    trial = pending[chosen]
    del pending[chosen]
    return trial


def as_feed(trials: list[dict[str, Any]] | Feed) -> Feed:
    return ListFeed(trials) if isinstance(trials, list) else trials
