"""Compare run directories: load them tolerantly, find what differs, rank them, render the table.

Everything here reads only the files of a run directory (config.yaml, run.json, metrics.csv) and
never imports TensorFlow or Keras, so `dnnlab compare` starts fast. A damaged run directory still
gets a row, marked with a note, and never stops the comparison.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnlab.errors import DnnlabError, RunDirError
from dnnlab.rundir.better import is_better, metric_mode
from dnnlab.rundir.layout import RUN_FILES_TEXT
from dnnlab.rundir.loading import (
    MISSING,
    NOT_METRICS,
    TEST_PREFIX,
    Absent,
    LoadedRun,
    find_run_dirs,
    load_runs,
)
from dnnlab.rundir.records import BestRecord, int_or_none
from dnnlab.rundir.search_trials import STOPPED_EARLY, read_search

# Spec keys that say most about how a network trains; shown even when every run agrees on them.
TELLING_KEYS = (
    "model.activation",
    "model.initializer",
    "model.normalization",
    "training.optimizer",
    "training.schedule",
    "model.dropout",
)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over the seeds of a group (std is None for one seed)."""

    mean: float | None
    std: float | None
    n: int


@dataclass
class SeedGroup:
    """Runs whose specs differ only in `seed`: one row with mean +- std over the seeds."""

    runs: list[LoadedRun]
    test: Any = None  # seed_tests.GroupTest: its interval and test against the best, once attached

    @property
    def seeds(self) -> list[Any]:
        return [r.config.get("seed") if r.config else None for r in self.runs]

    @property
    def best(self) -> Stat:
        return stat_of([r.best.value if r.best else None for r in self.runs])

    @property
    def params(self) -> dict[str, Any]:
        return self.runs[0].params


@dataclass(frozen=True)
class Reach:
    """`--reach val_accuracy=0.95`: how many epochs each run took to get there (mode says which way)."""

    metric: str
    threshold: float
    mode: str

    @property
    def column(self) -> str:
        return f"epochs_to_{self.metric}"


@dataclass
class Comparison:
    """Runs ranked best first by `metric`, the spec keys that differ, and what was skipped."""

    runs: list[LoadedRun]
    metric: str
    mode: str
    differing_keys: list[str]
    context_keys: list[str]
    skipped: list[Path]
    notes: list[str]
    groups: list[SeedGroup] | None = None
    reach: Reach | None = None
    tests: Any = None  # seed_tests.SeedTests: how the seed groups were tested (seed_tests.attach)

    @property
    def best_run(self) -> LoadedRun | None:
        first = self.runs[0]
        return first if first.best and first.best.value is not None else None


# ---------------------------------------------------------------- finding and loading run dirs


# ---------------------------------------------------------------- metrics and ranking


def best_of(run: LoadedRun, metric: str, mode: str) -> BestRecord:
    """The best epoch of `metric` in metrics.csv, or run.json's record when the csv lacks it."""
    values, epochs = run.history.get(metric), run.history.get("epoch")
    best: tuple[float, int] | None = None
    for index, value in enumerate(values or ()):
        if math.isfinite(value) and is_better(value, best[0] if best else None, mode):
            best = (value, index)
    if best is not None:
        value, index = best
        epoch = int_or_none(epochs[index]) if epochs else index
        return BestRecord(metric, mode, value, epoch)
    if run.monitored and run.monitored.metric == metric:
        return run.monitored
    if metric.startswith(TEST_PREFIX) and metric.removeprefix(TEST_PREFIX) in run.test:
        return BestRecord(metric, mode, run.test[metric.removeprefix(TEST_PREFIX)])  # no epoch
    return BestRecord(metric, mode)


def _default_metric(runs: list[LoadedRun], notes: list[str]) -> str:
    """The metric most runs monitor; val_loss or loss when no run.json says."""
    counts = Counter(r.monitored.metric for r in runs if r.monitored)
    if counts:
        metric = counts.most_common(1)[0][0]
        if len(counts) > 1:
            names = ", ".join(sorted(counts))
            notes.append(
                f"runs monitor different metrics ({names}); ranking by {metric}, choose another with --metric"
            )
        return metric
    return "val_loss" if any("val_loss" in r.history for r in runs) else "loss"


def _available_metrics(runs: list[LoadedRun]) -> list[str]:
    names = {k for r in runs for k in r.history if k not in NOT_METRICS}
    names |= {r.monitored.metric for r in runs if r.monitored}
    names |= {TEST_PREFIX + k for r in runs for k in r.test}
    return sorted(names)


def _ranked(items: Iterable[Any], value_of: Callable[[Any], float | None], mode: str) -> list[Any]:
    """`items` best first by `value_of` (is_better decides), those without a value last; a
    stable sort, so equal values keep their order."""

    def order(a: Any, b: Any) -> int:
        va, vb = value_of(a), value_of(b)
        if va is None or vb is None:
            return (va is None) - (vb is None)
        return -1 if is_better(va, vb, mode) else 1 if is_better(vb, va, mode) else 0

    return sorted(items, key=functools.cmp_to_key(order))


# ---------------------------------------------------------------- differing spec keys


def differing_keys(
    configs: list[dict[str, Any]], ignore: tuple[str, ...] = ("name",)
) -> dict[str, list[Any]]:
    """Dotted keys whose values differ between configs, with each config's value.

    Mappings are split into their leaf keys, so no cell holds a whole spec section; but where a
    mapping's `type` differs, the keys that only some of the types have fold into the type: sgd
    against adam reads `training.optimizer` = `{type: sgd, momentum: 0.9}` (shown
    `sgd(momentum=0.9)`) and `{type: adam, beta_1: 0.9, ...}`, and the keys every type has stay
    leaf keys (`training.optimizer.learning_rate`). A null where another run has a mapping
    (`early_stopping: null`) is null at every leaf.
    """
    out: dict[str, list[Any]] = {}
    if len(configs) > 1:
        keys = list(dict.fromkeys(k for c in configs for k in c if k not in ignore))
        for key in keys:
            _collect_differences([c.get(key, MISSING) for c in configs], key, out)
    return out


def _collect_differences(values: list[Any], path: str, out: dict[str, list[Any]]) -> None:
    first = values[0]
    if all(v == first for v in values[1:]):
        return
    splittable = all(v is None or isinstance(v, (dict, str, Absent)) for v in values)
    if splittable and any(isinstance(v, dict) for v in values):
        mappings = [_as_mapping(v) for v in values]
        keys = list(dict.fromkeys(k for m in mappings if isinstance(m, dict) for k in m))
        if "type" in keys and len({repr(_child(m, "type")) for m in mappings}) > 1:
            _fold_types(mappings, keys, path, out)
            return
        found = len(out)
        for key in keys:
            _collect_differences([_child(m, key) for m in mappings], f"{path}.{key}", out)
        if len(out) > found:
            return
    out[path] = values  # a leaf, or an empty mapping against null


def _fold_types(mappings: list[Any], keys: list[str], path: str, out: dict[str, list[Any]]) -> None:
    """Mappings of different types: `path` holds each one's type with the keys that exist only
    because of it (`elu(alpha=0.5)` against `relu`); the keys every mapping has are compared as
    leaf keys under it."""
    shared = [k for k in keys if k != "type" and all(isinstance(m, dict) and k in m for m in mappings)]
    own = [k for k in keys if k != "type" and k not in shared]
    out[path] = [{k: m[k] for k in ("type", *own) if k in m} if isinstance(m, dict) else m for m in mappings]
    for key in shared:
        _collect_differences([m[key] for m in mappings], f"{path}.{key}", out)


def _as_mapping(value: Any) -> Any:
    """A string beside mappings is the spec's shorthand for `{type: NAME}`."""
    return {"type": value} if isinstance(value, str) else value


def _child(mapping: Any, key: str) -> Any:
    """The value under `key`; a null or absent parent is null or absent all the way down."""
    return mapping.get(key, MISSING) if isinstance(mapping, dict) else mapping


# Schedules that set the rate themselves: the optimizer's learning_rate is not used by such a run.
SCHEDULES_WITHOUT_LR0 = ("piecewise", "one_cycle")


def unused_keys(config: dict[str, Any] | None) -> set[str]:
    """Dotted spec keys whose value this run ignores, so a label should not show them."""
    schedule = _lookup(config or {}, "training.schedule")
    kind = schedule.get("type") if isinstance(schedule, dict) else schedule
    return {"training.optimizer.learning_rate"} if kind in SCHEDULES_WITHOUT_LR0 else set()


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


# ---------------------------------------------------------------- building the comparison


def compare(
    paths: list[Path], metric: str | None = None, group_seeds: bool = False, reach: str | None = None
) -> Comparison:
    """Load the run directories among `paths` and rank them by `metric`, best first; `reach`
    (`val_accuracy=0.95`) adds the epochs each run took to meet that threshold.

    Raises RunDirError when no path is a run directory, DnnlabError for a metric no run records.
    """
    run_dirs, skipped = run_dirs_in(paths, "compare")
    runs = load_runs(run_dirs)
    notes: list[str] = []
    if metric is None:
        metric = _default_metric(runs, notes)
    elif metric not in _available_metrics(runs):
        raise DnnlabError(
            f"Received --metric {metric}, which no run records. "
            f"Expected one of: {', '.join(_available_metrics(runs))}."
        )
    if metric.startswith(TEST_PREFIX):
        notes.append(
            f"ranking by {metric} on the test split, as --metric asks; a model chosen by its test "
            "score makes that score optimistic (rank by a validation metric to keep it honest)"
        )
    mode = _mode_for(runs, metric)
    for run in runs:
        run.best = best_of(run, metric, mode)
    stopped = _mark_stopped_early(runs)
    # A trial a search stopped early had fewer epochs to reach its best: it ranks after the
    # trials that ran their full budget, as sweep.json's best does.
    runs = _ranked(runs, lambda r: r.best.value, mode)
    runs = [r for r in runs if r.status not in STOPPED_EARLY] + [r for r in runs if r.status in STOPPED_EARLY]
    if stopped:
        notes.append(
            f"{stopped} trial(s) a search stopped early (status paused or pruned: fewer epochs) are "
            "ranked after the trials that ran their full budget"
        )

    readable = [r for r in runs if r.config is not None]
    keys = mark_differences(readable, ("name", "seed") if group_seeds else ("name",))
    context = [
        k
        for k in TELLING_KEYS
        if not any(d == k or d.startswith(k + ".") for d in keys)
        and any(_lookup(r.config, k) is not MISSING for r in readable)
    ]
    for run in readable:
        run.params.update({k: _lookup(run.config, k) for k in context})
    groups = group_by_seed(runs, mode) if group_seeds else None
    target = parse_reach(reach, runs) if reach else None
    for run in runs:
        run.reached = epochs_to_reach(run, target) if target else None
    return Comparison(runs, metric, mode, keys, context, skipped, notes, groups, target)


def run_dirs_in(paths: list[Path], command: str) -> tuple[list[Path], list[Path]]:
    """The run directories among `paths` (a folder of runs or a sweep directory stands for its
    runs) and the paths skipped; none at all is a RunDirError naming `command`'s usage."""
    run_dirs, skipped = find_run_dirs(paths)
    if not run_dirs:
        given = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise RunDirError(
            f"No run directories found in {given or 'the arguments'}: expected folders with "
            f"{RUN_FILES_TEXT} (as `dnnlab train` writes under runs/). "
            f"Pass run directories, e.g. `dnnlab {command} runs/*`."
        )
    return run_dirs, skipped


def mark_differences(readable: list[LoadedRun], ignore: tuple[str, ...]) -> list[str]:
    """Set each run's `params` to its values of the spec keys that differ between the runs (all
    with a readable config), `ignore` left out; returns those keys."""
    diffs = differing_keys([r.config for r in readable], ignore)
    for i, run in enumerate(readable):
        run.params = {key: values[i] for key, values in diffs.items()}
    return list(diffs)


def _mark_stopped_early(runs: list[LoadedRun]) -> int:
    """Give each run a search paused or pruned that status (its run.json says completed); the
    number of such runs."""
    searches: dict[Path, dict[str, str]] = {}
    count = 0
    for run in runs:
        folder = run.path.parent
        if folder not in searches:
            search = read_search(folder)
            searches[folder] = {t.run: t.status for t in search.trials} if search else {}
        status = searches[folder].get(run.path.name)
        if status in STOPPED_EARLY and run.status == "completed":
            run.status = status
            count += 1
    return count


def parse_reach(text: str, runs: list[LoadedRun]) -> Reach:
    """`val_accuracy=0.95` -> Reach; the metric must be one the runs record per epoch."""
    metric, sep, value = text.partition("=")
    metric = metric.strip()
    try:
        threshold = float(value) if sep else math.nan
    except ValueError:
        threshold = math.nan
    if not math.isfinite(threshold):
        raise DnnlabError(f"Received --reach {text}, expected METRIC=VALUE, e.g. --reach val_accuracy=0.95.")
    recorded = sorted({k for r in runs for k in r.history if k not in NOT_METRICS})
    if metric not in recorded:
        raise DnnlabError(
            f"Received --reach {text}, but no run records {metric}. Expected one of: {', '.join(recorded)}."
        )
    return Reach(metric, threshold, _mode_for(runs, metric))


def epochs_to_reach(run: LoadedRun, reach: Reach) -> int | None:
    """The number of epochs after which `reach.metric` first met the threshold, or None: the
    row's `epoch` + 1, as the best epoch reads for people, so both count the same epochs."""
    epochs = run.history.get("epoch")
    for index, value in enumerate(run.history.get(reach.metric) or ()):
        if value >= reach.threshold if reach.mode == "max" else value <= reach.threshold:
            epoch = int_or_none(epochs[index]) if epochs and index < len(epochs) else None
            return (index if epoch is None else epoch) + 1
    return None


def _mode_for(runs: list[LoadedRun], metric: str) -> str:
    """The mode run.json records for `metric`, else the one its name implies."""
    for run in runs:
        if run.monitored and run.monitored.metric == metric and run.monitored.mode:
            return run.monitored.mode
    return metric_mode(metric)


def group_by_seed(runs: list[LoadedRun], mode: str) -> list[SeedGroup]:
    """Gather runs whose specs are equal but for `seed`; groups are ranked by their mean best."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        if run.config is None:
            key = f"unreadable:{run.path}"
        else:
            spec = {k: v for k, v in run.config.items() if k not in ("name", "seed")}
            key = json.dumps(spec, sort_keys=True, default=str)
        groups.setdefault(key, SeedGroup([])).runs.append(run)
    return _ranked(groups.values(), lambda g: g.best.mean, mode)


def stat_of(values: list[float | None]) -> Stat:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Stat(None, None, 0)
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return Stat(statistics.fmean(finite), std, len(finite))


def messages(comparison: Comparison) -> list[str]:
    """The notes for stderr: skipped paths (in one line) and caveats about the ranking."""
    lines = list(comparison.notes)
    if comparison.skipped:
        lines.insert(0, skipped_paths_note(comparison.skipped))
    return lines


def skipped_paths_note(skipped: list[Path]) -> str:
    """One line on the given paths that are not run directories (the first five named)."""
    shown = ", ".join(str(p) for p in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"skipped {len(skipped)} path(s) that are not run directories (no {RUN_FILES_TEXT}): {shown}{more}"
