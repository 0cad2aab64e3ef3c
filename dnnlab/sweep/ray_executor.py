"""Running trials as tasks of a Ray cluster: `dnnlab sweep ... --executor ray [--address ADDR]`.

Each trial is one Ray task that requests `threads` CPUs and calls `worker.run_trial` in a Ray
worker process, which sizes TensorFlow's thread pools once, as a local worker does. Ray places the
tasks by CPUs; the driver keeps as many in flight as can run at once (`jobs` on the local instance
it starts, the cluster's CPUs divided by `threads` on an existing cluster), so a trial reported
running is running, and records each outcome as its task finishes. The trials' run directories
are written by the nodes into the sweep directory, so on a cluster it must be on storage every
node mounts at the same path.

Ctrl-C or SIGTERM cancels the tasks: Ray raises KeyboardInterrupt in each, training saves the
trial at its last finished epoch and marks it interrupted, and the driver waits for that before
it disconnects (a driver's tasks die with it).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dnnlab.errors import ConfigError
from dnnlab.sweep import worker

try:
    import ray
    from ray import exceptions as ray_errors
except ModuleNotFoundError as exc:
    if exc.name != "ray":
        raise
    raise ConfigError("--executor ray: Ray is not installed; pip install 'dnnlab[ray]'") from None


# ----------------------------------------------------------------------------- in a Ray worker


@functools.cache
def _start_tensorflow(threads: int) -> None:
    """Once per Ray worker process: TensorFlow's thread pools are fixed when its runtime starts."""
    worker.start_tensorflow(threads)


@ray.remote(max_retries=0)  # a crashed trial is recorded failed, as on the local pool; --resume retries it
def _trial_task(sweep_dir: str, trial: dict[str, Any], threads: int) -> tuple[dict[str, Any], str]:
    """Run one trial; returns its outcome, with the id of the node it ran on, and what Python wrote
    to stderr (a bug's traceback), which the driver prints: the worker's own output goes to Ray's
    log files."""
    _start_tensorflow(threads)
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        outcome = worker.run_trial(sweep_dir, trial)
    return {**outcome, "node": ray.get_runtime_context().get_node_id()}, captured.getvalue()


# ----------------------------------------------------------------------------- the driver


def run(sweep_dir: Path, trials: list[dict[str, Any]], jobs: int, threads: int, address, on_trial_event):
    """Run `trials` as Ray tasks of `threads` CPUs each on the cluster at `address` (None: a local
    instance on this machine's cores), reporting as each starts and finishes; see executors.py."""
    # Ray's driver prints the cluster's error messages (a worker that died) on sys.stdout, which is
    # the sweep directory or --json alone: they go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            _connect(address)
            capacity = (lambda: jobs) if address is None else (lambda: _cluster_slots(threads))
            _note(address, threads, capacity())
            _run_tasks(str(Path(sweep_dir).absolute()), trials, threads, capacity, on_trial_event)
        finally:
            ray.shutdown()  # the local instance stops; a cluster only loses this driver


def _connect(address: str | None) -> None:
    from dnnlab.sweep.runner import available_cores

    keep = signal.getsignal(signal.SIGTERM)  # ray.init makes SIGTERM exit; the runner's handler interrupts
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:  # "local": a new instance, never one found in RAY_ADDRESS or /tmp/ray
            ray.init(address="local", num_cpus=available_cores(), **quiet)
        else:
            _check_reachable(address)
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, ValueError) as exc:
                why = _first_line(exc)
                raise ConfigError(f"--address {address}: cannot connect to a Ray cluster ({why})") from None
    finally:
        signal.signal(signal.SIGTERM, keep)


def _check_reachable(address: str) -> None:
    """Refuse an address where nothing listens: ray.init would retry it for minutes, deaf to Ctrl-C."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc.strerror or exc})") from None


def _cluster_slots(threads: int) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)


def _note(address: str | None, threads: int, slots: int) -> None:
    from dnnlab.console import stderr_console

    where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
    stderr_console().print(
        f"ray: {where}, {int(ray.cluster_resources().get('CPU', 0))} CPU(s): up to {slots} trial(s) "
        f"at a time, {threads} CPU(s) each",
        markup=False,
    )


def _run_tasks(sweep_dir: str, trials, threads: int, capacity, on_trial_event) -> None:
    from dnnlab.sweep.executors import as_feed

    feed = as_feed(trials)
    running: dict[Any, dict[str, Any]] = {}  # object ref -> trial
    task = _trial_task.options(num_cpus=threads)

    def collect(timeout: float) -> None:
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=timeout)
        for ref in ready:
            trial = running.pop(ref)
            on_trial_event("finished", trial, _outcome(ref, sweep_dir, trial))

    try:
        while True:
            slots = capacity()
            while len(running) < slots and feed.ready():
                trial = feed.next()
                if trial is None:
                    break
                running[task.remote(sweep_dir, trial, threads)] = trial
                on_trial_event("started", trial, None)
            if not running:
                break
            collect(0.5)
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the saving
        try:
            for ref in running:
                ray.cancel(ref)  # KeyboardInterrupt in the task: training saves and marks it interrupted
            deadline = time.monotonic() + worker.STOP_WAIT_SECONDS
            while running and time.monotonic() < deadline:
                collect(0.5)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise


def _outcome(ref, sweep_dir: str, trial: dict[str, Any]) -> dict[str, Any]:
    """The task's outcome; for a task cancelled or lost, what the trial's run directory records."""
    try:
        outcome, log = ray.get(ref)
    except ray_errors.TaskCancelledError:
        on_disk = worker.trial_on_disk(Path(sweep_dir), trial) or {}
        return {**_lost("interrupted", None), **on_disk, "status": "interrupted"}
    except ray_errors.RayTaskError as exc:  # raised outside run_trial's own handling: a bug
        sys.stderr.write(f"{exc}\n")
        return _lost("failed", f"its Ray task raised {type(exc.cause).__name__}: {_first_line(exc.cause)}")
    except ray_errors.RayError as exc:  # the worker or its node died
        why = _first_line(exc)
        return _lost("failed", f"its Ray worker process died ({why}); `dnnlab sweep --resume` continues it")
    if log:
        sys.stderr.write(log)
    return outcome


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lost(status: str, error: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "best": None,
        "epochs_done": 0,
        "train_seconds": None,
        "wall_seconds": None,
        "error": error,
    }
