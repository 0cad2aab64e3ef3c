"""`--seeds auto`: seeds added, round by round, to the configurations not yet told apart from the best.

Every configuration starts with seeds 0..2. When a round's trials are all done, the groups are
tested as `compare --group-seeds` tests them (each trial's best value of the monitored metric,
paired t against the best, Holm; `statistics.compare_groups`). Each group that is `within noise`
or has `too few seeds` gets the next 2 seed numbers, and the best too (the paired test needs the
seeds both ran); the sweep stops when every group is separated or has the cap's seeds.

The decision reads only sweep.json's finished trials, and a round's new trials are recorded in
the same write as the result that completed it, so `--resume` makes the same decisions: trials
done are never run again, and a driver stopped between rounds resumes into the next one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError
from dnnlab.results.statistics import NO_FINITE, TOO_FEW, WITHIN_NOISE, compare_groups
from dnnlab.rundir.better import metric_mode
from dnnlab.sweep.definition import AUTO_SEEDS_MAX, AUTO_SEEDS_START, AUTO_SEEDS_STEP, Sweep
from dnnlab.sweep.executors import Preference, take
from dnnlab.sweep.record import SweepRecord
from dnnlab.sweep.record_checks import AUTO_STOPS
from dnnlab.sweep.trials import (
    FINAL,
    Trial,
    format_value,
    group_key,
    name_width,
    short_keys,
    trial_count,
    trial_dir_name,
    values_by_key,
)

UNSEPARATED = (WITHIN_NOISE, TOO_FEW, NO_FINITE)
SEPARATED, AT_CAP = AUTO_STOPS  # why the sweep stopped adding seeds


def new_state(cap: int) -> dict[str, Any]:
    """sweep.json's `auto_seeds` at the start: the first round is seeds 0..2 of every group."""
    return {
        "max": cap,
        "rounds": [{"seeds": list(range(AUTO_SEEDS_START)), "unseparated": []}],
        "stop": None,
        "unseparated": [],
    }


def groups(trials: list[Trial]) -> dict[str, list[Trial]]:
    """The trials of each configuration, configurations in the order they first appear."""
    found: dict[str, list[Trial]] = {}
    for trial in trials:
        found.setdefault(group_key(trial.params), []).append(trial)
    return found


def label(trial: Trial, varying: list[str]) -> str:
    """A configuration in words: `activation=elu, learning_rate=0.01` (what differs, seed aside)."""
    keys = [k for k in varying if k != "seed"]
    names = short_keys(keys)
    return (
        ", ".join(f"{names[k]}={format_value(trial.params[k])}" for k in keys if k in trial.params) or "all"
    )


def looks(cap: int) -> int:
    """How many times a sweep capped at `cap` seeds can test its groups: after the first round
    and after every round of added seeds."""
    return 1 + -(-(cap - AUTO_SEEDS_START) // AUTO_SEEDS_STEP)


def verdicts(record: SweepRecord, cap: int = AUTO_SEEDS_MAX) -> dict[str, str]:
    """Each configuration's verdict against the best ({group key: verdict}), from the best value
    of each finished trial (a trial without one counts as a missing value).

    Testing after every round and stopping at the first separation would call equal
    configurations different far more often than 5% (measured in 400 simulated sweeps of equal
    groups, cap 10: 14% with two groups, 11% with three), so each look tests at 0.05 divided by
    the looks the cap allows (Bonferroni over the looks; 0.05 / 5 = 0.01 for the default cap:
    2.5% and 4.25% in the same simulation)."""
    found = groups(record.trials)
    values = {
        key: {t.params.get("seed"): (t.best or {}).get("value") for t in trials}
        for key, trials in found.items()
    }
    metric = next((t.best["metric"] for t in record.trials if t.best and t.best.get("metric")), "val_loss")
    alpha = 0.05 / looks(cap)
    results = compare_groups(values, metric_mode(metric), ci="t", confidence=0.95, alpha=alpha)
    return {r.name: r.verdict for r in results}


def next_round(record: SweepRecord, cap: int) -> tuple[list[str], dict[str, list[int]]]:
    """The configurations not yet separated from the best, and the seeds each group gets next
    ({group key: seeds}, empty when the sweep is done)."""
    found = groups(record.trials)
    verdict = verdicts(record, cap)
    open_ = [key for key in found if verdict.get(key) in UNSEPARATED]
    if not open_:
        return [], {}
    grow = [key for key in found if key in open_ or verdict.get(key) == "best"]
    seeds = {}
    for key in grow:
        have = {t.params.get("seed") for t in found[key]}
        start = max((s for s in have if isinstance(s, int)), default=-1) + 1
        more = [s for s in range(start, start + AUTO_SEEDS_STEP) if len(have) + (s - start) < cap]
        if more:
            seeds[key] = more
    return open_, seeds


class AutoSeedFeed:
    """The executor's feed (see executors.Feed): the round's trials, then, when the last of them
    has finished (`finished`, the judge of runner._execute), the next round's, until none is left."""

    def __init__(
        self, sweep: Sweep, record: SweepRecord, todo: list[Trial], check: Callable[[list[Trial]], None]
    ):
        self.sweep = sweep
        self.record = record
        self.check = check  # validates new trials (specs, folders) before they are recorded
        self.pending: deque[dict[str, Any]] = deque(t.to_dict() for t in todo)
        self.progress = None  # the sweep's SweepProgress, once runner._execute has made it
        self.notes: list[str] = []  # what was decided before it was there
        self.added = 0  # trials added since the start, for the progress line
        if not todo:  # a driver stopped between rounds: the decision it did not record
            self._decide()

    def show(self, progress) -> None:
        """Say what the feed decides on `progress` (a SweepProgress), and what it decided already."""
        self.progress = progress
        self.flush()

    def note(self, text: str) -> None:
        self.notes.append(text)  # said by `flush`, after the line of the trial that decided it

    def flush(self) -> None:
        if self.progress is not None:
            for text in self.notes:
                self.progress.note(text)
            self.notes.clear()

    def ready(self) -> bool:
        return bool(self.pending)

    def next(self, prefer: Preference | None = None) -> dict[str, Any] | None:
        return take(self.pending, prefer)

    def finished(self, trial: Trial) -> None:
        """Called with each finished trial before it is recorded: the last of a round decides the next."""
        if self.pending or any(t.status not in FINAL and t.id != trial.id for t in self.record.trials):
            return
        self._decide()

    def _decide(self) -> None:
        state = self.record.auto_seeds
        if state.get("stop") is not None:
            return
        cap = state["max"]
        open_, seeds = next_round(self.record, cap)
        by_key = groups(self.record.trials)
        names = [label(by_key[key][0], self.record.varying) for key in open_]
        if not seeds:
            state["stop"] = AT_CAP if open_ else SEPARATED
            state["unseparated"] = names
            if open_:
                self.note(
                    f"auto seeds: {'; '.join(names)}: within noise of the best at the cap of {cap} seeds"
                )
            else:
                self.note("auto seeds: every configuration is separated from the best")
            return
        width = name_width(max(trial_count(self.sweep), len(self.record.trials) + 1))
        taken = values_by_key([t.params for t in self.record.trials])
        new = []
        for key, numbers in seeds.items():
            first = by_key[key][0]
            for seed in numbers:
                trial_id = len(self.record.trials) + len(new)
                params = {**first.params, "seed": seed}
                name = trial_dir_name(trial_id, params, self.record.varying, width, taken)
                new.append(Trial(trial_id, params, name))
        self.check(new)
        self.record.trials.extend(new)
        state["rounds"].append(
            {"seeds": sorted({s for n in seeds.values() for s in n}), "unseparated": names}
        )
        self.pending.extend(t.to_dict() for t in new)
        self.added += len(new)
        if self.progress is not None and self.progress.to_run is not None:
            self.progress.to_run += len(new)
        self.note(
            f"auto seeds: {len(open_)} configuration(s) not yet separated from the best: "
            f"{len(new)} more trial(s) in round {len(state['rounds'])}"
        )


def check_resumed(sweep: Sweep, record: SweepRecord, where: Path) -> None:
    """sweep.json's `auto_seeds` must be there exactly when sweep.yaml says `seeds: auto`, with
    the same cap: the rounds go on as they were decided."""
    cap = (record.auto_seeds or {}).get("max")
    if cap != sweep.auto_seeds:
        wanted = f"auto_seeds.max {sweep.auto_seeds}" if sweep.auto_seeds else "no auto_seeds"
        raise RunDirError(
            f"{where}: auto_seeds: {cap if cap is not None else 'missing'} where sweep.yaml's seeds: "
            f"give {wanted}; sweep.json or sweep.yaml was edited: restore it or start the sweep again"
        )
