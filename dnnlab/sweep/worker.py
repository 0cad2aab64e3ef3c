"""Running trials: `run_trial` trains one trial in the calling process, and `run` keeps a pool of
warm local worker processes calling it.

`run_trial(sweep_dir, trial)` is a plain picklable function of plain data, so any executor can
call it: the local pool here, or a task on a cluster. It starts the trial, resumes it from its
last committed epoch, or only reads back a result already on disk, so calling it twice never
trains anything twice.

Workers are started with the "spawn" method (forking a process that has imported TensorFlow is
unsafe), import TensorFlow once, size its thread pools to their share of the cores, and then run
trial after trial with `keras.backend.clear_session()` between them. A worker ignores Ctrl-C: the
driver turns Ctrl-C or SIGTERM into one SIGTERM per worker, which training records as an
interrupted run. A worker whose driver dies (even by SIGKILL) interrupts itself the same way.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CRASH_ENV = "DNNLAB_SWEEP_CRASH_TRIAL"  # tests: a trial id whose worker kills itself (SIGKILL)
LOCK_WAIT_SECONDS = 60.0  # a dying worker may still be committing the epoch it was in
STOP_WAIT_SECONDS = 120.0  # how long the driver waits for interrupted workers to save
_definitions: dict[Path, Any] = {}

TrialEvents = Callable[[str, dict[str, Any], dict[str, Any] | None], None]


# ----------------------------------------------------------------------------- one trial


def run_trial(sweep_dir: str | Path, trial: dict[str, Any]) -> dict[str, Any]:
    """Train one trial of the sweep in `sweep_dir` (a sweep.json entry) to its end; returns its
    outcome: status, best, epochs_done, train_seconds, wall_seconds, error."""
    started = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    outcome = {"status": "failed", "best": None, "epochs_done": 0, "train_seconds": None, "error": None}
    try:
        if os.environ.get(CRASH_ENV) == str(trial["id"]):
            os.kill(os.getpid(), signal.SIGKILL)
        with contextlib.redirect_stderr(io.StringIO()):  # per-epoch lines of many trials: noise
            outcome.update(_train_trial(sweep_dir, trial))
    except KeyboardInterrupt:
        _forget_models()
        outcome["status"] = "interrupted"
        outcome.update(trial_on_disk(sweep_dir, trial) or {})
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded; the sweep goes on
        _forget_models()
        found = trial_on_disk(sweep_dir, trial) or {}
        outcome.update({k: v for k, v in found.items() if k not in ("status", "error")})
        outcome["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if not isinstance(exc, _user_errors()):
            traceback.print_exc()
    finally:
        _clear_session()
    outcome["wall_seconds"] = round(time.perf_counter() - started, 3)
    return outcome


def _user_errors() -> tuple[type[BaseException], ...]:
    from dnnlab.errors import DnnlabError

    return (DnnlabError,)


def _train_trial(sweep_dir: Path, trial: dict[str, Any]) -> dict[str, Any]:
    """Train the trial to its `epochs` (a search's rung; absent: the spec's training.epochs)."""
    from dnnlab.data.checked_spec import check_spec_mapping
    from dnnlab.sweep.trial_dirs import check_lock_file, remove_unstarted, trial_path
    from dnnlab.sweep.trials import FINAL, Trial, refused_write
    from dnnlab.training import lifecycle

    run_path = trial_path(sweep_dir, trial["run"])  # inside the sweep directory, not a link
    command = ["dnnlab", "sweep", str(sweep_dir), "--trial", str(trial["id"])]
    epochs = trial.get("epochs")
    found = on_disk(run_path)
    if found and found["status"] in FINAL and not refused_write(trial.get("error")):
        if not _goes_on(run_path, found, epochs):
            return found  # trained by an earlier driver that died before recording it
        check_lock_file(run_path)
        lifecycle.resume(run_path, epochs, command, progress=False)  # promoted: on from its checkpoint
    elif found and (run_path / "state.json").is_file():
        check_lock_file(run_path)
        _wait_for_lock(run_path)
        lifecycle.resume(run_path, epochs, command, progress=False)
    else:
        remove_unstarted(run_path)  # a start cut short (nothing trained); refuses what is not a run
        sweep = _definition(sweep_dir)
        overrides = Trial.from_dict(trial).overrides(sweep)
        checked = check_spec_mapping(sweep.spec, overrides, f"sweep spec {sweep.name}")
        # The spec keeps its full epochs (one_cycle plans its cycle from them), so a trial started
        # to a rung and promoted later equals one trained in one go.
        result = lifecycle.start(
            checked, sweep_dir, None, command, progress=False, run_path=run_path, epochs=epochs
        )
        if result.message:  # a diverged trial: in which epoch which values went non-finite
            return {**(on_disk(run_path) or {}), "error": result.message}
    return on_disk(run_path)


def _goes_on(run_path: Path, found: dict[str, Any], epochs: int | None) -> bool:
    """Whether a finished run is a paused trial now given more epochs: it completed every epoch it
    was given (early stopping did not end it) and fewer than `epochs`."""
    if epochs is None or found["status"] != "completed" or found["epochs_done"] >= epochs:
        return False
    from dnnlab.rundir.directory import RunDir
    from dnnlab.training.callbacks.early_stopping import ResumableEarlyStopping

    run = RunDir(run_path)
    record = run.read_record()
    if record.epochs_planned is not None and record.epochs_done < record.epochs_planned:
        return False
    monitor = record.best.metric if record.best else "val_loss"
    return not ResumableEarlyStopping.has_stopped(run.read_state(monitor).callbacks)


def trial_on_disk(sweep_dir: Path, trial: dict[str, Any]) -> dict[str, Any] | None:
    """`on_disk` of the trial's folder, or None when its `run` names no folder of the sweep."""
    from dnnlab.errors import RunDirError
    from dnnlab.sweep.trial_dirs import trial_path

    try:
        return on_disk(trial_path(sweep_dir, trial.get("run")))
    except RunDirError:
        return None


def on_disk(run_path: Path) -> dict[str, Any] | None:
    """A trial's outcome as its run.json records it, or None before run.json exists. A diverged
    run's `error` is the message run.json records (see the run record's `divergence`)."""
    from dnnlab.errors import RunDirError
    from dnnlab.rundir.directory import RunDir

    try:
        record = RunDir(run_path).read_record()
    except (OSError, RunDirError):
        return None
    best = record.best
    outcome = {
        "status": record.status,
        "best": {"metric": best.metric, "value": best.value, "epoch": best.epoch} if best else None,
        "epochs_done": record.epochs_done,
        "train_seconds": record.wall_seconds,
    }
    if record.status == "diverged":
        from dnnlab.rundir.loading import divergence_text

        outcome["error"] = divergence_text(record)
    return outcome


def _wait_for_lock(run_path: Path) -> None:
    """Wait while another process (a worker of a killed driver, saving its epoch) holds the run."""
    import fcntl

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    fd = os.open(run_path / ".lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # lifecycle.resume refuses with a clear error
                time.sleep(0.2)
    finally:
        os.close(fd)


def _definition(sweep_dir: Path):
    """The sweep's definition, read once per process."""
    key = sweep_dir.resolve()
    if key not in _definitions:
        from dnnlab.sweep.record import SweepDir

        _definitions[key] = SweepDir.open(sweep_dir).read_definition()
    return _definitions[key]


def _forget_models() -> None:
    """A failed or interrupted trial's model is not trained on again (see training.warm_models)."""
    if "dnnlab.training.warm_models" in sys.modules:
        from dnnlab.training import warm_models

        warm_models.forget_all()


def _clear_session() -> None:
    """Keras's global state of the trial, and its graphs and models (cycles), freed: clear_session
    runs one full garbage collection, cheap once the worker's start-up objects are frozen."""
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()


# ----------------------------------------------------------------------------- a worker process


def _interrupt(signum, frame):
    raise KeyboardInterrupt


_driver_gone = threading.Event()


def _watch_parent(parent: int) -> None:
    """Interrupt this worker when its driver is gone (the worker is re-parented), and end it if
    it has not ended after STOP_WAIT_SECONDS.

    The signal goes to the main thread itself: sent to the process, the kernel may deliver it to
    this thread, and a main thread blocked waiting for its next trial would never wake up.
    """
    while os.getppid() == parent:
        time.sleep(0.5)
    _driver_gone.set()  # the worker takes no further trial, even if this signal lands between two
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    time.sleep(STOP_WAIT_SECONDS)
    os._exit(130)


def start_tensorflow(threads: int) -> None:
    """Import TensorFlow once and fix its thread pools at this worker's share of the cores (they
    cannot change after TensorFlow's runtime starts, so later settings are ignored)."""
    from dnnlab import runtime, xla_cache

    os.environ[xla_cache.READ_ONLY] = "1"  # workers of one sweep share shapes: none writes the cache
    runtime.quiet_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.get_logger().setLevel("ERROR")  # retracing warnings: every trial builds a new model
    tf.constant(0.0) + 1.0  # start the runtime now, with these pools
    import dnnlab.training.lifecycle  # noqa: F401 - warm: Keras and every dnnlab module a trial needs
    from dnnlab.training import warm_models

    warm_models.enable()  # a later trial of a model's structure trains on it, traced already

    # TensorFlow's and Keras's modules are millions of objects that live as long as the worker; a
    # full collection after every trial walked them all (about 0.5 s a collection here). Frozen,
    # they are skipped, and each collection walks what trials made.
    gc.collect()
    gc.freeze()


def _quiet_output() -> None:
    """The sweep's stdout is its directory alone, and TensorFlow's C++ notes and Keras's messages
    (retracing, "Invalid loss") of many trials would bury its progress: send file descriptors 1
    and 2 to /dev/null and keep Python's sys.stderr (tracebacks of bugs) on the driver's stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    kept = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(kept, "w", buffering=1)


def worker_main(worker: int, tasks, results, sweep_dir: str, threads: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _quiet_output()
    try:
        start_tensorflow(threads)
        while not _driver_gone.is_set():
            trial = tasks.get()
            if trial is None:
                return
            outcome = run_trial(sweep_dir, trial)
            results.put(("finished", worker, trial["id"], outcome))
            if outcome["status"] == "interrupted":
                return
    except KeyboardInterrupt:
        return


# ----------------------------------------------------------------------------- the local pool


class _Worker:
    def __init__(self, context, index: int, results, sweep_dir: Path, threads: int):
        self.index = index
        self.tasks = context.SimpleQueue()
        self.trial: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None  # the trial it was given last
        self.process = context.Process(
            target=worker_main,
            args=(index, self.tasks, results, str(sweep_dir), threads, os.getpid()),
            name=f"dnnlab-sweep-worker-{index}",
            daemon=True,
        )
        self.process.start()

    def give(self, trial: dict[str, Any]) -> None:
        self.trial = self.last = trial
        self.tasks.put(trial)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)


def preference(worker: _Worker, workers: list[_Worker]) -> Callable[[dict[str, Any]], int]:
    """How well each trial suits `worker`, lowest first. A worker keeps the models it traced
    (training.warm_models), so another seed of the configuration it ran last suits it best (no
    tracing), then a configuration no other worker is on (whose tracing falls to it alone)."""
    from dnnlab.sweep.trials import group_key

    last = group_key(worker.last["params"]) if worker.last else None
    others = {group_key(w.trial["params"]) for w in workers if w is not worker and w.trial is not None}

    def rank(trial: dict[str, Any]) -> int:
        key = group_key(trial["params"])
        return 0 if key == last else 1 if key not in others else 2

    return rank


def _crashed(worker: _Worker) -> dict[str, Any]:
    code = worker.process.exitcode
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return {
        "status": "failed",
        "best": None,
        "epochs_done": 0,
        "train_seconds": None,
        "wall_seconds": None,
        "error": f"its worker process died ({how}); `dnnlab sweep --resume` continues it",
    }


def run(sweep_dir: Path, trials, jobs: int, threads: int, address, on_trial_event: TrialEvents):
    """Run `trials` (a list or an executors.Feed) on up to `jobs` warm worker processes, calling
    `on_trial_event("started", trial, None)` and `on_trial_event("finished", trial, outcome)` from
    this thread. A worker starts when a trial is ready for it. A worker that dies is replaced and its trial
    reported failed. On KeyboardInterrupt every worker is stopped, the trials they were training
    are reported (interrupted) once saved, and the KeyboardInterrupt is raised again."""
    from dnnlab.sweep.executors import as_feed

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    feed = as_feed(trials)
    workers: list[_Worker] = []
    next_index = 0

    def spawn() -> _Worker:
        nonlocal next_index
        next_index += 1
        return _Worker(context, next_index, results, sweep_dir, threads)

    def collect(timeout: float) -> None:
        try:
            _, index, _, outcome = results.get(timeout=timeout)
        except queue.Empty:
            return
        for worker in workers:
            if worker.index == index and worker.trial is not None:
                trial, worker.trial = worker.trial, None
                on_trial_event("finished", trial, outcome)

    def bury_dead() -> None:
        for worker in list(workers):
            if not worker.process.is_alive():
                collect(0.2)  # a result it sent just before exiting
                if worker.trial is not None:
                    trial, worker.trial = worker.trial, None
                    on_trial_event("finished", trial, _crashed(worker))
                workers.remove(worker)

    def hand_out() -> None:
        """Give a ready trial to each idle worker, starting workers (new, or replacing the dead)
        up to `jobs`: all of them at once when the trials are there, so they warm up together."""
        idle = [w for w in workers if w.trial is None]
        while feed.ready() and (idle or len(workers) < jobs):
            worker = idle.pop(0) if idle else spawn()
            if worker not in workers:
                workers.append(worker)
            trial = feed.next(preference(worker, workers))
            if trial is None:
                return
            worker.give(trial)
            on_trial_event("started", trial, None)

    try:
        while True:
            hand_out()
            if not any(w.trial is not None for w in workers):
                break
            collect(0.5)
            bury_dead()
    except KeyboardInterrupt:
        previous = signal.signal(
            signal.SIGINT, signal.SIG_IGN
        )  # a second Ctrl-C must not cut the saving short
        try:
            for worker in workers:
                worker.stop()
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while any(w.trial is not None for w in workers) and time.monotonic() < deadline:
                collect(0.5)
                bury_dead()
        finally:
            signal.signal(signal.SIGINT, previous)
        raise
    finally:
        for worker in workers:
            if worker.process.is_alive():
                worker.tasks.put(None)
        for worker in workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
