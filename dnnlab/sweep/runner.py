"""`dnnlab sweep`: validate every trial, create the sweep directory, run the trials on an
executor, record each outcome in sweep.json as it arrives; and `--resume`.

Exit codes: 0 every trial completed, 1 a trial failed or diverged, 2 bad input (raised as a
DnnlabError before anything is written), 130 interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dnnlab.data import datasets
from dnnlab.data.checked_spec import check_spec_mapping
from dnnlab.errors import ConfigError, DnnlabError, RunDirError
from dnnlab.files.folders import ensure_folder
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import now
from dnnlab.sweep import auto_seeds, executors
from dnnlab.sweep.definition import Sweep
from dnnlab.sweep.progress import SweepProgress
from dnnlab.sweep.record import SweepDir, SweepRecord, new_record
from dnnlab.sweep.trial_dirs import check_trial_dir, remove_staging_leftovers
from dnnlab.sweep.trials import FINAL, PENDING, Trial, check_trials, expand_and_check, refused_write
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


def run_sweep(
    sweep: Sweep,
    runs_dir: Path,
    command: list[str],
    progress: bool = True,
    combos: list[dict[str, Any]] | None = None,
) -> SweepResult:
    """Validate every trial, then create the sweep directory and run them all. `progress`: lines
    on stderr as trials finish. `combos`: parameter sets in place of the axes (trials.expand)."""
    if sweep.search is not None:
        return _run_search(sweep, runs_dir, command, progress)
    expansion = expand_and_check(sweep, combos)
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
    if sweep.auto_seeds is not None:
        record.auto_seeds = auto_seeds.new_state(sweep.auto_seeds)
    folder.write_record(record)
    todo = [t.to_dict() for t in record.trials]
    judge = None
    if sweep.auto_seeds is not None:
        todo = auto_seeds.AutoSeedFeed(sweep, record, record.trials, _new_trial_check(folder, sweep))
        judge = todo.finished
    try:
        return _execute(folder, sweep, record, todo, len(record.trials), workers, executor, progress, judge)
    except DnnlabError:  # the executor refused before any trial started (a cluster it cannot reach)
        if all(t.status == PENDING for t in record.trials):
            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def _run_search(sweep: Sweep, runs_dir: Path, command: list[str], progress: bool) -> SweepResult:
    """A search: its options, axes and data checked, then the sweep directory with its study, and
    configurations suggested and trained as workers become free (see search.py)."""
    from dnnlab.sweep import search

    search.require(sweep.search.sampler)  # Optuna missing is one line, before anything is written
    base = check_spec_mapping(sweep.spec, sweep.override_texts(), f"sweep spec {sweep.name}")
    plan = search.plan(sweep, base)
    search.check_axes(sweep)
    executor = executors.get(sweep.executor)
    ensure_folder(runs_dir)
    datasets.check_values(base.spec.data)
    workers = _search_workers(sweep, base, sweep.jobs)
    folder = SweepDir.create(runs_dir, sweep.name)
    folder.lock()
    record = new_record(sweep, [], [a.key for a in sweep.axes], command)
    record.search = _search_record(plan)
    try:
        folder.write_definition(sweep)
        folder.write_record(record)
        feed = search.SearchFeed(folder, sweep, record, plan, base)
    except BaseException:
        folder.unlock()
        raise
    try:
        return _execute(folder, sweep, record, feed, None, workers, executor, progress, feed.finished)
    except DnnlabError:
        if not record.trials:  # refused before any trial started (a cluster it cannot reach)
            shutil.rmtree(folder.path, ignore_errors=True)
        raise


def _search_workers(sweep: Sweep, base, jobs: int | None) -> Workers:
    """As for a grid, counting each configuration's seeds (no more workers than runs can use)."""
    seeds = len(sweep.seeds) if sweep.seeds is not None else 1
    macs = dense_macs_per_step(base.spec, base.info.input_shape)
    return choose_workers(jobs, (sweep.search.trials or available_cores()) * seeds, macs)


def _search_record(plan) -> dict[str, Any]:
    """sweep.json's `search`: the settings with the metric and goal resolved, and the study file."""
    from dnnlab.sweep.search import STUDY_FILE

    return {**plan.search.to_dict(), "metric": plan.metric, "goal": plan.goal, "study": STUDY_FILE}


def resume_sweep(
    path: Path,
    command: list[str],
    jobs: int | None = None,
    progress: bool = True,
    trials: int | None = None,
) -> SweepResult:
    """Continue a sweep: completed, diverged and failed trials are kept (but those that failed
    because a write was refused, as on a full disk); interrupted and running ones resume from
    their last committed epoch; the rest start. A search continues its study: `trials` is its new
    total of configurations (finished ones are never trained again; paused ones may be promoted)."""
    folder = SweepDir.open(path)
    sweep = folder.read_definition()
    if trials is not None and (sweep.search is None or trials < 1):
        what = "a positive number of configurations" if sweep.search else "a search (this sweep has none)"
        raise ConfigError(f"--trials {trials}: expected {what}")
    if sweep.search is not None:
        from dnnlab.sweep import search

        search.require(sweep.search.sampler)  # before the lock: one line, nothing written
    executor = executors.get(sweep.executor)  # before the lock: Ray missing is one line, nothing written
    folder.lock()
    if sweep.search is not None:
        return _resume_search(folder, sweep, command, jobs, progress, trials, executor)
    try:
        record = folder.read_record()  # untrusted: checked field by field (record_checks)
        todo = [t for t in record.trials if t.status not in FINAL or _unfinished_on_disk(folder, t)]
        auto_seeds.check_resumed(sweep, record, folder.sweep_json)
        if not todo and record.status in ("completed", "failed"):
            folder.unlock()
            return SweepResult(folder.path, record)
        for trial in todo:  # every folder a trial will write or remove, before anything is
            check_trial_dir(folder.path, trial.run)
        checked = check_trials(sweep, todo) if todo else []
        macs = max((dense_macs_per_step(c.spec, c.info.input_shape) for c in checked), default=0)
        workers = choose_workers(jobs if jobs is not None else sweep.jobs, max(1, len(todo)), macs)
        remove_staging_leftovers(folder.path, [t.run for t in todo])
    except BaseException:
        folder.unlock()
        raise
    record.status, record.finished = "running", None
    record.command = command
    entries = [t.to_dict() for t in todo]
    if sweep.auto_seeds is None:
        return _execute(folder, sweep, record, entries, len(entries), workers, executor, progress)
    try:
        feed = auto_seeds.AutoSeedFeed(sweep, record, todo, _new_trial_check(folder, sweep))
    except BaseException:
        folder.unlock()
        raise
    count = len(todo) + feed.added
    return _execute(folder, sweep, record, feed, count, workers, executor, progress, feed.finished)


def _new_trial_check(folder: SweepDir, sweep: Sweep) -> Callable[[list[Trial]], None]:
    """What `--seeds auto` checks of a round's new trials before it records them: their specs
    (only the seed differs from trials already checked) and that their folders are free."""

    def check(trials: list[Trial]) -> None:
        for trial in trials:
            check_trial_dir(folder.path, trial.run)
        check_trials(sweep, trials)

    return check


def _resume_search(folder, sweep, command, jobs, progress, trials, executor) -> SweepResult:
    """A search's resume, under the sweep's lock: the study brought in line with sweep.json, then
    the runs that go on, promotions and new suggestions up to `trials` (the new total)."""
    from dnnlab.sweep import search

    try:
        if trials is not None:
            sweep = replace(sweep, search=replace(sweep.search, trials=trials))
        base = check_spec_mapping(sweep.spec, sweep.override_texts(), f"sweep spec {sweep.name}")
        plan = search.plan(sweep, base)
        record = folder.read_record()
        if trials is not None:
            folder.write_definition(sweep)
            record.search = {**(record.search or {}), "trials": trials}
        search.reopen(folder, record)
        feed = search.SearchFeed(folder, sweep, record, plan, base)
        feed.sync()  # what a killed driver decided and did not tell the study
    except BaseException:
        folder.unlock()
        raise
    if not feed.ready():  # nothing to train or suggest: no workers (nor a Ray instance) started
        record.status = _final_status(record)
        record.finished = record.finished or now()
        try:
            folder.write_record(record)
        finally:
            folder.unlock()
        return SweepResult(folder.path, record)
    workers = _search_workers(sweep, base, jobs if jobs is not None else sweep.jobs)
    record.status, record.finished = "running", None
    record.command = command
    return _execute(folder, sweep, record, feed, None, workers, executor, progress, feed.finished)


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
    todo,
    count: int | None,
    workers: Workers,
    executor,
    show_progress: bool = True,
    judge: Callable[[Trial], None] | None = None,
):
    """Run `todo` (sweep.json entries, or a search's feed; `count` trials, None: not known ahead)
    on the executor, recording each start and outcome in sweep.json; `judge` (a search's) sees
    each finished trial before it is recorded."""
    progress = SweepProgress(record, count, quiet=not show_progress)
    what = f"{count} trial(s)" if count is not None else _search_note(record)
    if record.auto_seeds is not None:
        what += f" (seeds added to configurations not yet separated, up to {record.auto_seeds['max']} each)"
    progress.note(
        f"sweep {folder.path}: {what} on {workers.jobs} {sweep.executor} worker(s) x "
        f"{workers.threads} TensorFlow thread(s) ({workers.reason})"
    )
    if count is None and workers.jobs > 1:
        progress.note(
            "more than one worker: the order of results, and so the suggestions, may differ between runs"
        )
    if isinstance(todo, auto_seeds.AutoSeedFeed):
        todo.show(progress)

    def on_trial_event(event: str, entry: dict[str, Any], outcome: dict[str, Any] | None) -> None:
        trial = next(t for t in record.trials if t.id == entry["id"])
        if event == "started":
            trial.status = "running"
            progress.started(trial)
        else:
            for key in ("status", "best", "epochs_done", "train_seconds", "wall_seconds", "error", "node"):
                setattr(trial, key, outcome.get(key))
            if judge is not None:
                judge(trial)
            progress.finished(trial)
            if isinstance(todo, auto_seeds.AutoSeedFeed):
                todo.flush()
        folder.write_record(record)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        executor(folder.path, todo, workers.jobs, workers.threads, sweep.address, on_trial_event)
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


def _search_note(record: SweepRecord) -> str:
    search = record.search or {}
    trials, timeout = search.get("trials"), search.get("timeout")
    budget = f"up to {trials} configuration(s)" if trials else f"configurations for {timeout:g} s"
    return f"a {search.get('sampler')} search ({budget}, pruner {search.get('pruner')})"


def _final_status(record: SweepRecord) -> str:
    statuses = {t.status for t in record.trials}
    # A search's diverged trial is one of its results (a learning rate too high), as a pruned one is.
    ended = {"completed", "paused", "pruned", "diverged"} if record.search else {"completed"}
    if statuses <= ended and all(c.status != "failed" for c in record.configs):
        return "completed"
    if statuses & {"interrupted", "running", PENDING}:
        return "interrupted"
    return "failed"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
