"""`dnnlab sweep`: validate every trial, create the sweep directory, run the trials on an
executor, record each outcome in sweep.json as it arrives; and `--resume`.

Exit codes: 0 every trial completed, 1 a trial failed or diverged, 2 bad input (raised as a
DnnlabError before anything is written), 130 interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnlab.data import datasets
from dnnlab.errors import DnnlabError, RunDirError
from dnnlab.files.folders import ensure_folder
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import now
from dnnlab.sweep import executors
from dnnlab.sweep.definition import Sweep
from dnnlab.sweep.progress import SweepProgress
from dnnlab.sweep.record import SweepDir, SweepRecord, new_record
from dnnlab.sweep.trials import FINAL, PENDING, Trial, expand_and_check, refused_write
from dnnlab.training.execution import SMALL_STEP_MACS, dense_macs_per_step

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class Workers:
    jobs: int
    threads: int  # TensorFlow threads per worker
    reason: str


@dataclass(frozen=True)
class SweepResult:
    path: Path
    record: SweepRecord

    @property
    def exit_code(self) -> int:
        status = self.record.status
        return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choose_workers(jobs: int | None, trials: int, macs: int, cores: int | None = None) -> Workers:
    """Small models (most dense networks) gain little from several threads per step, so each core
    gets its own worker with one thread; a large model gets fewer workers with more threads."""
    cores = cores or available_cores()
    if jobs is None:
        small = macs < SMALL_STEP_MACS
        jobs = cores if small else max(1, cores // 4)
        why = f"{'small' if small else 'large'} model: {macs:,} multiply-adds a step"
    else:
        why = "--jobs"
    jobs = max(1, min(jobs, trials))
    threads = max(1, cores // jobs)
    return Workers(jobs, threads, f"{cores} core(s), {why}")


def run_sweep(sweep: Sweep, runs_dir: Path, command: list[str], progress: bool = True) -> SweepResult:
    """Validate every trial, then create the sweep directory and run them all. `progress`: lines
    on stderr as trials finish."""
    expansion = expand_and_check(sweep)
    executor = executors.get(sweep.executor)  # Ray missing is one line, before anything is written
    ensure_folder(runs_dir)  # before the data is read: a bad folder costs nothing
    sources = {repr(c.spec.data.dataset): c.spec.data for c in expansion.checked}
    for data_spec in sources.values():
        datasets.check_values(data_spec)
    macs = max(dense_macs_per_step(c.spec, c.info.input_shape) for c in expansion.checked)
    workers = choose_workers(sweep.jobs, len(expansion.trials), macs)
    folder = SweepDir.create(runs_dir, sweep.name)
    folder.lock()
    folder.write_definition(sweep)
    record = new_record(sweep, expansion.trials, expansion.varying, command)
    folder.write_record(record)
    try:
        return _execute(folder, sweep, record, record.trials, workers, executor, progress)
    except DnnlabError:  # the executor refused before any trial started (a cluster it cannot reach)
        if all(t.status == PENDING for t in record.trials):
            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def resume_sweep(
    path: Path, command: list[str], jobs: int | None = None, progress: bool = True
) -> SweepResult:
    """Continue a sweep: completed, diverged and failed trials are kept (but those that failed
    because a write was refused, as on a full disk); interrupted and running ones resume from
    their last committed epoch; the rest start."""
    folder = SweepDir.open(path)
    sweep = folder.read_definition()
    executor = executors.get(sweep.executor)  # before the lock: Ray missing is one line, nothing written
    folder.lock()
    record = folder.read_record()
    todo = [t for t in record.trials if t.status not in FINAL or _unfinished_on_disk(folder, t)]
    if not todo and record.status in ("completed", "failed"):
        folder.unlock()
        return SweepResult(folder.path, record)
    from dnnlab.sweep.trials import check_trials

    checked = check_trials(sweep, todo) if todo else []
    macs = max((dense_macs_per_step(c.spec, c.info.input_shape) for c in checked), default=0)
    workers = choose_workers(jobs if jobs is not None else sweep.jobs, max(1, len(todo)), macs)
    record.status, record.finished = "running", None
    record.command = command
    return _execute(folder, sweep, record, todo, workers, executor, progress)


def _unfinished_on_disk(folder: SweepDir, trial: Trial) -> bool:
    """A trial recorded failed because its worker died (its run directory was left mid-training)
    or because the disk refused a write (its run resumes once the disk can be written)."""
    if trial.status != "failed":
        return False
    if refused_write(trial.error):
        return True
    try:
        status = RunDir(folder.path / trial.run).read_record().status
    except (OSError, RunDirError):
        return trial.error is not None and "worker process died" in trial.error
    return status in ("running", "interrupted")


def _execute(
    folder: SweepDir,
    sweep: Sweep,
    record: SweepRecord,
    todo: list[Trial],
    workers: Workers,
    executor,
    show_progress: bool = True,
):
    by_id = {t.id: t for t in record.trials}
    progress = SweepProgress(record, len(todo), quiet=not show_progress)
    progress.note(
        f"sweep {folder.path}: {len(todo)} trial(s) on {workers.jobs} {sweep.executor} worker(s) x "
        f"{workers.threads} TensorFlow thread(s) ({workers.reason})"
    )

    def on_event(event: str, entry: dict[str, Any], outcome: dict[str, Any] | None) -> None:
        trial = by_id[entry["id"]]
        if event == "started":
            trial.status = "running"
            progress.started(trial)
        else:
            for key in ("status", "best", "epochs_done", "train_seconds", "wall_seconds", "error"):
                setattr(trial, key, outcome.get(key))
            progress.finished(trial)
        folder.write_record(record)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        executor(
            folder.path, [t.to_dict() for t in todo], workers.jobs, workers.threads, sweep.address, on_event
        )
        record.status = _final_status(record)
    except KeyboardInterrupt:
        record.status = "interrupted"
        for trial in record.trials:
            if trial.status == "running":  # its worker never reported (killed while saving)
                trial.status = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)
        record.finished = now()
        try:
            folder.write_record(record)  # on a full disk this fails too: one line, exit 1
        finally:
            progress.close()
            folder.unlock()
    return SweepResult(folder.path, record)


def _final_status(record: SweepRecord) -> str:
    statuses = {t.status for t in record.trials}
    if statuses <= {"completed"}:
        return "completed"
    if statuses & {"interrupted", "running", PENDING}:
        return "interrupted"
    return "failed"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
