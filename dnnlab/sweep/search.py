"""A search that learns: Optuna suggests each configuration from the results so far, dnnlab's own
executors (the warm local workers, Ray) train it, and pruning pauses and resumes runs exactly.

The driver asks the study for a configuration, writes its trials (one run per seed) into
sweep.json, hands them to the executor as workers become free (`SearchFeed`), and tells the study
the result: the mean over seeds of each run's best value of the metric. The study is an Optuna
journal file in the sweep directory (`study.journal`, never SQLite), so `--resume` continues the
same study with its whole history.

sweep.json is the record of what dnnlab decided; the study is brought in line with it after every
decision and when a sweep resumes (`SearchFeed.sync`, idempotent), so a driver killed at any
instant neither runs a configuration twice nor loses one:

- A configuration asked but not yet in sweep.json (the journal has it RUNNING) is adopted by the
  next suggestion, under its number and with its parameters: every suggestion is seeded by (seed,
  trial number), so it is the one an uninterrupted run would have made. One killed while its
  parameters were being written (some missing) is failed in the study and a new one is asked.
- A decision in sweep.json that the study lacks is told on resume; a trial whose run finished
  but whose result was not recorded is read back from its run directory, never trained again.

A suggestion may repeat an earlier configuration (TPE often does in a small space of choices).
Its runs would be the earlier one's epoch for epoch (same overrides, same seeds), so it is not
trained: sweep.json records it `duplicate` with `duplicate_of`, and the study is told the earlier
one's result (Optuna's FAQ: return the earlier value). It counts towards `trials`, which is the
number of suggestions: were repeats free, a space with fewer configurations than `trials` would
never end the search.

Optuna has no "paused" state. A paused configuration that is not among the best of its rung is
told PRUNED (its curve up to the rung: what Optuna's own pruners leave, and what TPE and CMA-ES
learn from); if it is promoted later, each later result is added as one more finished trial with
the same parameters and the longer curve (user attributes `dnnlab_config` and `dnnlab_epochs`
name it), so the sampler sees every rung a configuration reached.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.util
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnlab.data.checked_spec import CheckedSpec, check_spec_mapping
from dnnlab.errors import ConfigError, DnnlabError, RunDirError
from dnnlab.rundir.better import is_better, metric_mode
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import float_or_none
from dnnlab.sweep import rungs
from dnnlab.sweep.axes import Axis, yaml_text
from dnnlab.sweep.definition import Search, Sweep
from dnnlab.sweep.executors import Preference
from dnnlab.sweep.record import SweepDir, SweepRecord
from dnnlab.sweep.rungs import DUPLICATE, PAUSED, RUNNING, Config
from dnnlab.sweep.trials import PENDING, Trial, refused_write, trial_dir_name

STUDY_FILE = "study.journal"
STUDY_NAME = "dnnlab"
CONFIG_ATTR, EPOCHS_ATTR = "dnnlab_config", "dnnlab_epochs"
_SCALARS = (str, int, float, bool, type(None))  # what Optuna's categorical choices may be


# ----------------------------------------------------------------------------- what a search needs


def require(sampler: str) -> None:
    """Refuse, in one line, a search this installation cannot run (before anything is written)."""
    extra = "pip install 'dnnlab[search]'"
    for module, needed in (("optuna", True), ("cmaes", sampler == "cmaes")):
        if not needed:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            what = "Optuna is" if module == "optuna" else "the cmaes package is"
            raise ConfigError(f"--search {sampler}: {what} not installed; {extra}") from None
    if sampler == "gp" and not _installed("torch"):
        raise ConfigError(
            "--search gp: Optuna's Gaussian-process sampler needs PyTorch, which is not installed; "
            "pip install torch (its CPU build: --index-url https://download.pytorch.org/whl/cpu)"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Plan:
    """A search resolved against its spec: the metric, its goal and the Optuna search space."""

    search: Search
    metric: str
    goal: str  # minimize or maximize
    axes: tuple[Axis, ...]
    max_epochs: int  # the base spec's training.epochs

    @property
    def mode(self) -> str:
        return "min" if self.goal == "minimize" else "max"

    def space(self) -> dict[str, Any]:
        """Each axis as an Optuna distribution: loguniform and uniform as floats, randint and
        range(...) as integers (their order is information a sampler uses), lists as choices."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        space = {}
        for axis in self.axes:
            if axis.kind in ("uniform", "loguniform"):
                space[axis.key] = FloatDistribution(axis.low, axis.high, log=axis.kind == "loguniform")
            elif axis.kind == "randint":
                space[axis.key] = IntDistribution(int(axis.low), int(axis.high) - 1)
            elif _is_range(axis):
                step = abs(axis.values[1] - axis.values[0])
                space[axis.key] = IntDistribution(min(axis.values), max(axis.values), step=step)
            else:
                space[axis.key] = CategoricalDistribution([_encode(v) for v in axis.values])
        return space

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's parameters as spec values (a choice of [64, 32] travels as the text "[64, 32]")."""
        values = {}
        for axis in self.axes:
            value = params[axis.key]
            if axis.is_list and not _is_range(axis):
                value = next(v for v in axis.values if _encode(v) == value)
            values[axis.key] = value
        return values

    def encode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Spec values as Optuna's parameters: `decode` undone."""
        out = {}
        for axis in self.axes:
            value = params[axis.key]
            out[axis.key] = _encode(value) if axis.is_list and not _is_range(axis) else value
        return out


def _encode(value: Any) -> Any:
    return value if isinstance(value, _SCALARS) else yaml_text(value)


def _is_range(axis: Axis) -> bool:
    """A range(a,b,step) axis of two or more integers: an integer distribution with a step."""
    values = axis.values
    return (
        axis.text.startswith("range(")
        and len(values) > 1
        and len({b - a for a, b in zip(values, values[1:])}) == 1
    )


def plan(sweep: Sweep, base: CheckedSpec) -> Plan:
    """Resolve the search's metric and goal and check its axes; each mistake is one line."""
    search = sweep.search
    spec = base.spec
    metric = search.metric or spec.training.monitor
    logged = ["loss", *(spec.training.metrics or [])]
    if spec.data.validation != 0:
        logged += [f"val_{name}" for name in logged]
    if metric not in logged:
        raise ConfigError(
            f"--metric {metric}: the trials do not log it; expected one of {', '.join(logged)} "
            "(training.metrics sets the metrics, data.validation the val_ ones)"
        )
    if not sweep.axes:
        raise ConfigError("--search suggests values of axes: add at least one -g KEY=AXIS (or search: axes:)")
    encoded = [(axis, [_encode(v) for v in axis.values]) for axis in sweep.axes if axis.is_list]
    for axis, values in encoded:
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"-g {axis.key}: two values of {axis.text} read alike; give distinct ones")
    goal = search.goal or ("minimize" if metric_mode(metric) == "min" else "maximize")
    return Plan(search, metric, goal, tuple(sweep.axes), spec.training.epochs)


def check_axes(sweep: Sweep) -> None:
    """Every value an axis can take, each alone on the spec, validated before anything is written:
    a list's values and a distribution's bounds (a bad combination is found when it is suggested,
    and that configuration is recorded failed)."""
    for axis in sweep.axes:
        if axis.is_list:
            values = axis.values
        elif axis.kind == "randint":
            values = (int(axis.low), int(axis.high) - 1)
        else:
            values = (axis.low, axis.high)
        for value in values:
            overrides = [*sweep.override_texts(), f"{axis.key}={yaml_text(value)}"]
            try:
                check_spec_mapping(sweep.spec, overrides, f"sweep spec {sweep.name}")
            except DnnlabError as exc:
                raise ConfigError(f"-g {axis.key}={axis.text}: {exc}") from None


# ----------------------------------------------------------------------------- the study


def sampler_seed(seed: int, number: int) -> int:
    """The seed of the suggestion for trial `number`: a function of the two alone, so a resumed
    study suggests what an uninterrupted one would have (Optuna keeps a sampler's generator in
    memory only)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "big")


def make_sampler(search: Search, seed: int):
    import optuna

    startup = {} if search.startup is None else {"n_startup_trials": search.startup}
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **startup)
    if search.sampler == "cmaes":  # pruned and paused trials count, by their last value
        with warnings.catch_warnings():  # "consider_pruned_trials is experimental", at every suggestion
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=seed, consider_pruned_trials=True, warn_independent_sampling=False, **startup
            )
    if search.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False, **startup)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(folder: SweepDir, goal: str):
    """The sweep's study in its journal file (created on first use) and that journal's storage,
    whose methods report and read a trial by number. The driver holds the sweep's
    lock, so a journal lock file found here is a killed driver's, and a last line without its end
    is a write a kill cut short: both are removed before Optuna reads the journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = folder.path / STUDY_FILE
    lock = Path(f"{path}.lock")
    lock.unlink(missing_ok=True)
    _drop_torn_line(path)
    try:
        storage = JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, direction=goal, load_if_exists=True
        )
        return study, storage
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: not a readable Optuna journal ({exc})") from None


def _drop_torn_line(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)


# ----------------------------------------------------------------------------- the values


def run_curve(run_path: Path, metric: str, mode: str) -> list[float | None]:
    """A run's best value of `metric` after each epoch (None until it has one), from metrics.csv."""
    try:
        rows = RunDir(run_path).read_metrics()
    except (OSError, ValueError, csv.Error):
        return []
    curve, best = [], None
    for row in rows:
        value = float_or_none(row.get(metric))
        if value is not None and is_better(value, best, mode):
            best = value
        curve.append(best)
    return curve


def mean_curve(curves: list[list[float | None]]) -> dict[int, float]:
    """The configuration's curve: epoch count -> the mean over its runs of each one's best so far
    (a run that ended early keeps its last value); only epochs where every run has a value."""
    length = max((len(c) for c in curves), default=0)
    out = {}
    for epochs in range(1, length + 1):
        values = [c[min(epochs, len(c)) - 1] if c else None for c in curves]
        if values and all(v is not None for v in values):
            out[epochs] = sum(values) / len(values)
    return out


# ----------------------------------------------------------------------------- the driver


class SearchFeed:
    """Hands the executor the next trial as workers become free, and judges each finished one.

    Order of work when a worker is free: a run of a configuration that goes on (a rung reached
    under median pruning, a promotion, an interrupted run), then ASHA's promotion of a paused
    configuration, then a new suggestion while the trial budget and timeout allow.
    """

    def __init__(self, folder: SweepDir, sweep: Sweep, record: SweepRecord, plan: Plan, checked: CheckedSpec):
        import optuna

        self.folder, self.sweep, self.record, self.plan = folder, sweep, record, plan
        self.search = plan.search
        self.base = checked
        self.space = plan.space()
        self.study, self.storage = open_study(folder, plan.goal)
        self.study_id = self.storage.get_study_id_from_name(STUDY_NAME)
        startup = 5 if self.search.startup is None else self.search.startup  # Optuna's default
        self.pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
            if self.search.pruner == "median"
            else None
        )
        self.deadline = time.monotonic() + self.search.timeout if self.search.timeout else None
        self.busy: set[int] = set()  # trials handed to the executor and not yet back
        self.orphans = self._orphans()

    # --- what the executor calls ------------------------------------------------------------
    def ready(self) -> bool:
        return bool(self._runnable() or self._promotion() or self._may_ask())

    def next(self, prefer: Preference | None = None) -> dict[str, Any] | None:
        while True:
            runnable = self._runnable()
            if prefer is not None:  # sorted is stable: ties keep their order
                runnable = sorted(runnable, key=lambda t: prefer(t.to_dict()))
            trial = next(iter(runnable), None)
            if trial is not None:
                trial.epochs = self._config(trial).epochs
                self.busy.add(trial.id)
                return trial.to_dict()
            config = self._promotion()
            if config is not None:
                config.status = RUNNING
                config.epochs = self._next_rung(config)
                self.save()
                continue
            if not self._may_ask():
                return None
            self._ask()

    def finished(self, trial: Trial) -> None:
        """Judge a trial the runner has updated from its outcome (its run's status)."""
        self.busy.discard(trial.id)
        config = self._config(trial)
        if trial.status == "completed":
            curve = self._run_curve(trial)
            given = trial.epochs or config.max_epochs
            rung = {"epochs": trial.epochs_done, "value": curve[-1] if curve else None}
            trial.rungs = [r for r in trial.rungs or [] if r["epochs"] != trial.epochs_done] + [rung]
            if trial.epochs_done >= given and trial.epochs_done < config.max_epochs:
                trial.status = PAUSED
        if trial.status == "interrupted" or any(self._waits(t, config) for t in self._runs(config)):
            return
        self._judge(config)
        self.save()
        self.sync()

    # --- choosing work ----------------------------------------------------------------------
    def _runnable(self) -> list[Trial]:
        return [
            t
            for c in self.record.configs
            if c.status == RUNNING
            for t in self._runs(c)
            if t.id not in self.busy and self._waits(t, c)
        ]

    def _waits(self, trial: Trial, config: Config) -> bool:
        """Whether a run of the configuration still has to reach the configuration's epochs."""
        if trial.status in (PENDING, "running", "interrupted"):
            return True
        return trial.status == PAUSED and trial.epochs_done < config.epochs

    def _promotion(self) -> Config | None:
        if self.search.pruner not in ("asha", "hyperband") or self._timed_out():
            return None
        return next(iter(rungs.promotable(self.record.configs, self.search.eta, self.plan.goal)), None)

    def _may_ask(self) -> bool:
        budget = self.search.trials
        return not self._timed_out() and (budget is None or len(self.record.configs) < budget)

    def _timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    # --- a new configuration ----------------------------------------------------------------
    def _ask(self) -> None:
        """Suggest a configuration (or adopt the one a killed driver asked) and record its runs."""
        number, params = self._adopt() or self._suggest()
        self.storage.set_trial_user_attr(self._trial_id(number), CONFIG_ATTR, len(self.record.configs))
        config = Config(
            id=len(self.record.configs),
            params=self.plan.decode(params),
            number=number,
            max_epochs=self.plan.max_epochs,
            bracket=self._bracket(len(self.record.configs)),
        )
        original = self._original(params)
        if original is not None:  # its runs would be the original's, epoch for epoch: not trained
            config.status, config.duplicate_of = DUPLICATE, original.id
            config.max_epochs = original.max_epochs
            self.record.configs.append(config)
            self.save()
            self.sync()
            return
        runs = self._new_runs(config)
        try:
            checked = [self._check(t) for t in runs]
        except DnnlabError as exc:
            config.status, config.error = "failed", str(exc)
        else:
            config.max_epochs = checked[0].spec.training.epochs
            config.epochs = self._next_rung(config)
            self.record.trials += runs
        self.record.configs.append(config)
        self.save()
        self.sync()

    def _original(self, params: dict[str, Any]) -> Config | None:
        """The earlier configuration with these parameters (Optuna's), if any. Every configuration
        of a search has the sweep's overrides and seeds, so equal parameters mean equal runs."""
        return next(
            (
                c
                for c in self.record.configs
                if c.duplicate_of is None and self.plan.encode(c.params) == params
            ),
            None,
        )

    def _suggest(self) -> tuple[int, dict[str, Any]]:
        number = len(self.storage.get_all_trials(self.study_id, deepcopy=False))
        self.study.sampler = make_sampler(self.search, sampler_seed(self.search.seed, number))
        trial = self.study.ask(self.space)
        return trial.number, trial.params

    def _adopt(self) -> tuple[int, dict[str, Any]] | None:
        if not self.orphans:
            return None
        frozen = self.orphans.pop(0)
        return frozen.number, frozen.params

    def _orphans(self) -> list:
        """Trials the study has RUNNING that no configuration records: asked by a driver killed
        before it wrote sweep.json. Complete ones are adopted in order; others are failed."""
        from optuna.trial import TrialState

        known = {c.number for c in self.record.configs}
        found = []
        for frozen in self.storage.get_all_trials(self.study_id, states=(TrialState.RUNNING,)):
            if frozen.number in known:
                continue
            if set(frozen.params) == set(self.space):
                found.append(frozen)
            else:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
        return sorted(found, key=lambda f: f.number)

    def _bracket(self, index: int) -> int:
        if self.search.pruner != "hyperband":
            return 0
        return index % rungs.bracket_count(self.search.min_epochs, self.search.eta, self.plan.max_epochs)

    def _new_runs(self, config: Config) -> list[Trial]:
        seeds = self.sweep.seeds if self.sweep.seeds is not None else (self.base.spec.seed,)
        varying = [a.key for a in self.plan.axes] + (["seed"] if len(seeds) > 1 else [])
        first = len(self.record.trials)
        taken = {a.key: list(a.values) for a in self.plan.axes}
        runs = []
        for index, seed in enumerate(seeds):
            params = {**config.params, "seed": seed}
            trial_id = first + index
            name = trial_dir_name(trial_id, params, varying, values=taken)
            runs.append(Trial(trial_id, params, name, config=config.id))
        return runs

    def _check(self, trial: Trial) -> CheckedSpec:
        try:
            overrides = trial.overrides(self.sweep)
            return check_spec_mapping(self.sweep.spec, overrides, f"sweep spec {self.sweep.name}")
        except DnnlabError as exc:
            raise ConfigError(f"trial {trial.run}: {exc}") from None

    # --- judging a configuration at a rung --------------------------------------------------
    def _judge(self, config: Config) -> None:
        runs = self._runs(config)
        statuses = {t.status for t in runs}
        if statuses & {"diverged", "failed"}:
            config.status = "diverged" if "diverged" in statuses else "failed"
            config.error = next((t.error for t in runs if t.error), None)
            for trial in runs:
                if trial.status == PAUSED and config.status == "diverged":
                    trial.status = "pruned"  # the configuration is dropped: its other seeds stop here
            return
        curve = mean_curve([self._run_curve(t) for t in runs])
        if not curve:
            config.status, config.error = "failed", f"no run logged {self.plan.metric}"
            return
        reached = max(curve)
        config.rungs = [r for r in config.rungs if r["epochs"] != reached] + [
            {"epochs": reached, "value": curve[reached]}
        ]
        if statuses == {"completed"}:
            config.status, config.value = "completed", curve[reached]
            return
        if self.pruner is None:  # asha, hyperband: promoted when a worker is free, if it ranks
            config.status = PAUSED
            return
        self._report(config, curve)  # median: judged on its curve against the completed ones
        if self.pruner.prune(self.study, self.storage.get_trial(self._trial_id(config.number))):
            config.status = "pruned"
            for trial in runs:
                trial.status = "pruned" if trial.status == PAUSED else trial.status
        else:
            config.epochs = self._next_rung(config)

    def _next_rung(self, config: Config) -> int:
        return rungs.next_rung(config, self.search.pruner, self.search.min_epochs, self.search.eta)

    def _runs(self, config: Config) -> list[Trial]:
        return [t for t in self.record.trials if t.config == config.id]

    def _config(self, trial: Trial) -> Config:
        return self.record.configs[trial.config]

    # --- the study follows sweep.json --------------------------------------------------------
    def sync(self) -> None:
        """Tell the study what sweep.json decided and it does not know yet (idempotent). Each
        study trial of a configuration names it and the epochs it was judged at (user attributes),
        which is how a result already told is recognised."""
        waiting = {c.id for c in rungs.promotable(self.record.configs, self.search.eta, self.plan.goal)}
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        states = {t.number: t.state.name for t in trials}
        told = {(t.user_attrs.get(CONFIG_ATTR), t.state.name, t.user_attrs.get(EPOCHS_ATTR)) for t in trials}
        for config in self.record.configs:
            if config.duplicate_of is not None:
                if states.get(config.number) == "RUNNING":
                    self._tell_duplicate(config)
                continue
            wanted = self._wanted(config, config.id in waiting)
            judged = config.rungs[-1]["epochs"] if config.rungs else 0
            if states.get(config.number) == "RUNNING":
                self._report(config, self._curve(config))
                if wanted is not None:
                    state, value = wanted
                    self.storage.set_trial_user_attr(self._trial_id(config.number), EPOCHS_ATTR, judged)
                    self.study.tell(config.number, value, state=state, skip_if_finished=True)
            elif wanted is not None and (config.id, wanted[0].name, judged) not in told:
                self._add_record(config, wanted, judged)

    def _tell_duplicate(self, config: Config) -> None:
        """Tell the study what the original configuration showed, as Optuna's FAQ does for a
        repeated suggestion: its value once it completed; while it is paused or once it is pruned
        or diverged, PRUNED with its curve (which also steers the sampler away from asking again);
        FAIL if it failed or diverged before its first rung. An original that another worker is
        training is waited for: the next sync after it is judged tells the repeat."""
        from optuna.trial import TrialState

        original = self.record.configs[config.duplicate_of]
        judged = original.rungs[-1]["epochs"] if original.rungs else 0
        if original.status == "completed":
            state, value = TrialState.COMPLETE, original.value
        elif original.status == RUNNING:
            return
        elif original.status != "failed" and original.rungs:
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.FAIL, None
        self._report(config, self._curve(original))
        self.storage.set_trial_user_attr(self._trial_id(config.number), EPOCHS_ATTR, judged)
        self.study.tell(config.number, value, state=state, skip_if_finished=True)

    def _wanted(self, config: Config, promotable: bool):
        """The state (and value) the study should hold for the configuration; None: running."""
        from optuna.trial import TrialState

        if config.status == "completed":
            return TrialState.COMPLETE, config.value
        if (config.status == PAUSED and not promotable) or config.status in ("pruned", "diverged"):
            return (TrialState.PRUNED, None) if config.rungs else (TrialState.FAIL, None)
        if config.status == "failed":
            return TrialState.FAIL, None
        return None

    def _curve(self, config: Config) -> dict[int, float]:
        """The configuration's curve up to the epochs it was last judged at (what the study hears)."""
        judged = config.rungs[-1]["epochs"] if config.rungs else 0
        curve = mean_curve([self._run_curve(t) for t in self._runs(config)])
        return {epochs: value for epochs, value in curve.items() if epochs <= judged}

    def _run_curve(self, trial: Trial) -> list[float | None]:
        return run_curve(self.folder.path / trial.run, self.plan.metric, self.plan.mode)

    def _report(self, config: Config, curve: dict[int, float]) -> None:
        trial_id = self._trial_id(config.number)
        reported = self.storage.get_trial(trial_id).intermediate_values
        for step, value in curve.items():
            if step not in reported and math.isfinite(value):
                self.storage.set_trial_intermediate_value(trial_id, step, value)

    def _add_record(self, config: Config, wanted, judged: int) -> None:
        """A later result of a promoted configuration: one more finished trial, same parameters."""
        from optuna.trial import TrialState, create_trial

        state, value = wanted
        curve = self._curve(config)
        if state == TrialState.PRUNED:
            value = curve.get(judged)
        self.study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=self.plan.encode(config.params),
                distributions=self.space,
                user_attrs={CONFIG_ATTR: config.id, EPOCHS_ATTR: judged},
                intermediate_values=curve,
            )
        )

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def save(self) -> None:
        self.folder.write_record(self.record)


def reopen(folder: SweepDir, record: SweepRecord) -> None:
    """Before a resumed search runs: runs left running by a killed driver, and runs failed by a
    dead worker or a refused write, go on; their configurations with them."""
    for trial in record.trials:
        if trial.status == "running" or (trial.status == "failed" and _resumable(folder, trial)):
            trial.status = "interrupted"
            config = record.configs[trial.config]
            if config.status == "failed":
                config.status, config.error = RUNNING, None


def _resumable(folder: SweepDir, trial: Trial) -> bool:
    if refused_write(trial.error):
        return True
    try:
        status = RunDir(folder.path / trial.run).read_record().status
    except (OSError, RunDirError):
        return trial.error is not None and "worker process died" in trial.error
    return status in ("running", "interrupted", "starting")
