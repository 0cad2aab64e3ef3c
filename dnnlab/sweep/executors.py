"""Where trials run: a registry from executor name to the module whose `run` runs them.

Every executor module provides `run(sweep_dir, trials, jobs, threads, address, on_event)`: it
runs each trial (a sweep.json entry) by calling `dnnlab.sweep.worker.run_trial(sweep_dir,
trial)` somewhere, calls `on_event("started", trial, None)` and `on_event("finished", trial,
outcome)` in the calling thread, and on KeyboardInterrupt stops its trials (saved, marked
interrupted), passes them to `on_event` and raises again. Adding an executor is adding one module here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

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
