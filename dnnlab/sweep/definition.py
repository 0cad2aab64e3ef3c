"""A sweep's definition: the sweep file (pydantic, unknown keys refused) and the resolved `Sweep`.

A sweep comes from a spec plus command-line options, or from a sweep file kept in version control
(`spec:`, `grid:`, `random:` or `search:`, `seeds:`, `jobs:`), with command-line options added on top. The
resolved definition holds the spec inline (its `extends:` chain merged), so `sweep.yaml` in the
sweep directory is all that `--resume` needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dnnlab.errors import ConfigError
from dnnlab.rundir.layout import check_name
from dnnlab.spec.base import NAME_PATTERN
from dnnlab.spec.loading import parse_override, read_spec_file, read_yaml
from dnnlab.spec.models import MAX_SEED
from dnnlab.spec.wording import format_validation_error, short
from dnnlab.sweep.axes import MAX_TRIALS, Axis, as_number, axis_from_yaml, parse_axis_option, yaml_text
from dnnlab.sweep.executors import EXECUTORS

AUTO_SEEDS_START = 3  # seeds every configuration starts with under `--seeds auto`
AUTO_SEEDS_STEP = 2  # seeds added to each group still unseparated, per round
AUTO_SEEDS_MAX = 10  # the default cap
AUTO_SEEDS_LIMIT = 100  # the largest cap


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomSection(_Strict):
    trials: int = Field(gt=0, le=MAX_TRIALS, description="how many trials to draw")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seeds the draws: the same seed draws the same trials"
    )
    axes: dict[str, Any] = Field(
        default_factory=dict, description="dotted key -> list of values or an axis such as uniform(a,b)"
    )


SAMPLERS = ("tpe", "cmaes", "gp", "random")
PRUNERS = ("none", "median", "asha", "hyperband")
GOALS = ("minimize", "maximize")


class SearchSection(_Strict):
    """A search that learns (Optuna): each configuration is suggested from the results so far."""

    sampler: Literal[SAMPLERS] = Field("tpe", description="tpe, cmaes, gp (needs torch) or random")
    pruner: Literal[PRUNERS] = Field(
        "none", description="median: stop for good; asha, hyperband: pause at rungs, promote the best"
    )
    trials: int | None = Field(None, gt=0, description="how many configurations to try in all")
    metric: str | None = Field(None, description="what the search optimizes; default: training.monitor")
    goal: Literal[GOALS] | None = Field(None, description="default: from the metric (losses: minimize)")
    timeout: float | None = Field(None, gt=0, description="seconds after which no configuration starts")
    seed: int = Field(0, ge=0, description="seeds the sampler: the same seed suggests the same trials")
    eta: int = Field(3, ge=2, description="rungs: min_epochs * eta^k epochs; the best 1/eta go on")
    min_epochs: int = Field(1, gt=0, description="the first rung")
    startup: int | None = Field(
        None, ge=0, description="trials before the sampler models and median prunes; default: Optuna's"
    )
    axes: dict[str, Any] = Field(
        default_factory=dict, description="dotted key -> list of values or an axis such as loguniform(a,b)"
    )


class SweepFile(_Strict):
    """A sweep file. `spec` is a path (relative to the sweep file) or an inline spec."""

    spec: str | dict[str, Any] = Field(description="the spec: a path relative to this file, or inline")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="default: the spec's name")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted key -> value fixed for every trial (as -o)"
    )
    grid: dict[str, Any] | None = Field(None, description="dotted key -> values: the cartesian product")
    random: RandomSection | None = None
    search: SearchSection | None = None
    seeds: (
        Annotated[int, Field(gt=0, le=MAX_TRIALS)]
        | Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(max_length=MAX_TRIALS)]
        | str
        | None
    ) = Field(
        None,
        description="N: seeds 0..N-1; a list: those seeds; every trial runs once per seed; "
        f"auto or auto:MAX: seeds added until the groups separate (MAX default {AUTO_SEEDS_MAX})",
    )
    jobs: Literal["auto"] | Annotated[int, Field(gt=0)] = Field(
        "auto", description="local workers; auto: from cores and model size"
    )
    executor: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="the Ray cluster's address (executor: ray)")

    @model_validator(mode="after")
    def _one_mode(self) -> SweepFile:
        given = [key for key in ("grid", "random", "search") if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of grid:, random: or search:, not {' and '.join(given)}")
        return self


@dataclass(frozen=True)
class Search:
    """A search's settings (the axes are the sweep's); None fields are resolved from the spec."""

    sampler: str = "tpe"
    pruner: str = "none"
    trials: int | None = None  # None: until the timeout
    metric: str | None = None
    goal: str | None = None
    timeout: float | None = None
    seed: int = 0
    eta: int = 3
    min_epochs: int = 1
    startup: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass(frozen=True)
class Sweep:
    """The resolved definition: what sweep.yaml records and what trials are expanded from."""

    name: str
    spec: dict[str, Any]  # the raw spec mapping, `extends:` merged
    overrides: dict[str, Any] = field(default_factory=dict)
    axes: tuple[Axis, ...] = ()
    random_trials: int | None = None  # None: a grid
    random_seed: int = 0
    search: Search | None = None  # a search: trials suggested as results come in
    seeds: tuple[int, ...] | None = None  # None: each trial keeps the spec's seed
    auto_seeds: int | None = None  # `seeds: auto:MAX`: the most seeds a configuration gets
    jobs: int | None = None  # None: chosen from the cores and the model size
    executor: str = "local"
    address: str | None = None

    def override_texts(self) -> list[str]:
        return [f"{key}={yaml_text(value)}" for key, value in self.overrides.items()]

    def to_dict(self) -> dict[str, Any]:
        """The sweep file form, spec inline (sweep.yaml)."""
        axes = {a.key: a.to_yaml() for a in self.axes}
        out: dict[str, Any] = {"name": self.name, "spec": self.spec, "overrides": dict(self.overrides)}
        if self.search is not None:
            out["search"] = {**self.search.to_dict(), "axes": axes}
        elif self.random_trials is None:
            out["grid"] = axes
        else:
            out["random"] = {"trials": self.random_trials, "seed": self.random_seed, "axes": axes}
        seeds = list(self.seeds) if self.seeds is not None else None
        out.update(
            seeds=f"auto:{self.auto_seeds}" if self.auto_seeds is not None else seeds,
            jobs=self.jobs if self.jobs is not None else "auto",
            executor=self.executor,
            address=self.address,
        )
        return out


def auto_seeds_option(text: str, where: str = "--seeds") -> int | None:
    """`auto` or `auto:MAX` -> the cap (MAX seeds per configuration); None: not an auto form."""
    text = text.strip()
    if text != "auto" and not text.startswith("auto:"):
        return None
    count = text.removeprefix("auto:") if text != "auto" else str(AUTO_SEEDS_MAX)
    if not (count.isascii() and count.isdigit() and len(count) <= 4) or not (
        AUTO_SEEDS_START <= int(count) <= AUTO_SEEDS_LIMIT
    ):
        raise ConfigError(
            f"{where} {short(text)}: expected auto or auto:MAX, MAX the most seeds a configuration gets, "
            f"{AUTO_SEEDS_START}..{AUTO_SEEDS_LIMIT} (it starts with {AUTO_SEEDS_START}), e.g. auto:10"
        )
    return int(count)


def seeds_option(text: str) -> tuple[int, ...]:
    """`--seeds N` (seeds 0..N-1) or `--seeds A,B,C` (those seeds)."""
    parts = [p.strip() for p in text.split(",")]
    # ASCII digits only ("²".isdigit() is true), and short enough for int() (no 10**5000)
    if not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts) or (
        len(parts) == 1 and int(parts[0]) == 0
    ):
        raise ConfigError(
            f"--seeds {text}: expected a count N > 0 (seeds 0..N-1) or a list of seeds, e.g. --seeds 0,1,2"
        )
    if len(parts) == 1:
        if int(parts[0]) > MAX_TRIALS:
            raise ConfigError(
                f"--seeds {text}: at most {MAX_TRIALS:,} seeds (a sweep has at most that many trials)"
            )
        return tuple(range(int(parts[0])))
    if len(parts) > MAX_TRIALS or any(int(p) > MAX_SEED for p in parts):
        raise ConfigError(
            f"--seeds {short(text)}: at most {MAX_TRIALS:,} seeds, each at most {MAX_SEED} "
            "(the range NumPy seeds take)"
        )
    return _distinct_seeds(int(p) for p in parts)


def _distinct_seeds(seeds: Any) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {list(seeds)} lists a seed twice")
    return seeds


def is_sweep_file(raw: Any) -> bool:
    """A sweep file names its `spec:`; a spec never has that key."""
    return isinstance(raw, dict) and "spec" in raw


def read_sweep_file(path: Path) -> Sweep:
    """Parse and resolve a sweep file; errors are one ConfigError line starting with the file."""
    raw = read_yaml(path)
    try:
        parsed = SweepFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, SweepFile, str(path))) from None
    if isinstance(parsed.spec, str):
        spec_path = Path(os.path.normpath(path.parent / parsed.spec))
        spec, _ = read_spec_file(spec_path)
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: spec: {spec_path} is not a YAML mapping of spec keys")
    else:
        if "extends" in parsed.spec:
            raise ConfigError(f"{path}: spec: an inline spec cannot use extends:; give spec: PATH instead")
        spec = parsed.spec
    section = parsed.random
    searching = parsed.search
    axes_raw = section.axes if section else searching.axes if searching else (parsed.grid or {})
    seeds = parsed.seeds
    auto = None
    if isinstance(seeds, str):
        auto = auto_seeds_option(seeds, f"{path}: seeds:")
        if auto is None:
            raise ConfigError(
                f"{path}: seeds: {short(seeds)}: expected a count N, a list of seeds, auto or auto:MAX"
            )
        seeds = None
    return Sweep(
        name=parsed.name or str(spec.get("name") or "sweep"),
        spec=spec,
        overrides={key: as_number(value) for key, value in parsed.overrides.items()},
        axes=tuple(axis_from_yaml(key, value) for key, value in axes_raw.items()),
        random_trials=section.trials if section else None,
        random_seed=section.seed if section else 0,
        search=Search(**searching.model_dump(exclude={"axes"})) if searching else None,
        seeds=tuple(range(seeds)) if isinstance(seeds, int) else (_distinct_seeds(seeds) if seeds else None),
        auto_seeds=auto,
        jobs=None if parsed.jobs == "auto" else parsed.jobs,
        executor=parsed.executor,
        address=parsed.address,
    )


def build_sweep(
    source: Path,
    overrides: list[str] = (),
    axes: list[str] = (),
    seeds: str | None = None,
    random_trials: int | None = None,
    jobs: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    name: str | None = None,
    search: str | None = None,
    trials: int | None = None,
    prune: str | None = None,
    metric: str | None = None,
    goal: str | None = None,
    timeout: float | None = None,
) -> Sweep:
    """The sweep of a spec or sweep file with the command line's options on top: `-o` and `-g`
    add to (or replace the same keys of) the file's; the other options replace the file's.
    `search` (a sampler) makes it a search, as a `search:` section does; `trials`, `prune`,
    `metric`, `goal` and `timeout` set the search's."""
    raw = read_yaml(source)
    if is_sweep_file(raw):
        sweep = read_sweep_file(source)
    else:
        spec, _ = read_spec_file(source)
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: expected a spec or a sweep file (a YAML mapping)")
        sweep = Sweep(name=str(spec.get("name") or "sweep"), spec=spec)
    fixed = dict(sweep.overrides)
    for text in overrides:
        path, value = parse_override(text)
        fixed[".".join(path)] = as_number(value)
    given = {a.key: a for a in sweep.axes}
    for option in axes:
        axis = parse_axis_option(option)
        given[axis.key] = axis
    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected a positive number of workers")
    if random_trials is not None and random_trials < 1:
        raise ConfigError(f"--random {random_trials}: expected a positive number of trials to draw")
    if name is not None:
        check_name(name)
    searching = _search_options(sweep, random_trials, search, trials, prune, metric, goal, timeout)
    auto = sweep.auto_seeds
    if seeds is not None:
        auto = auto_seeds_option(seeds)
    if auto is not None and searching is not None:
        raise ConfigError("--seeds auto adds seeds to a grid or random draws; a search takes --seeds K")
    return replace(
        sweep,
        search=searching,
        name=name or sweep.name,
        overrides=fixed,
        axes=tuple(given.values()),
        random_trials=random_trials if random_trials is not None else sweep.random_trials,
        seeds=(seeds_option(seeds) if auto is None else None) if seeds is not None else sweep.seeds,
        auto_seeds=auto,
        jobs=jobs if jobs is not None else sweep.jobs,
        executor=executor or sweep.executor,
        address=address if address is not None else sweep.address,
    )


def _search_options(
    sweep: Sweep,
    random_trials: int | None,
    sampler: str | None,
    trials: int | None,
    prune: str | None,
    metric: str | None,
    goal: str | None,
    timeout: float | None,
) -> Search | None:
    """The sweep's search with the command line's options on top; each mistake is one line."""
    options = {"trials": trials, "prune": prune, "metric": metric, "goal": goal, "timeout": timeout}
    if sampler is None and sweep.search is None:
        given = [f"--{key}" for key, value in options.items() if value is not None]
        if given:
            raise ConfigError(f"{given[0]} belongs to a search; add --search {'|'.join(SAMPLERS)}")
        return None
    for option, value, allowed in (("--search", sampler, SAMPLERS), ("--prune", prune, PRUNERS)):
        if value is not None and value not in allowed:
            raise ConfigError(f"{option} {value}: expected one of {', '.join(allowed)}")
    if goal is not None and goal not in GOALS:
        raise ConfigError(f"--goal {goal}: expected one of {', '.join(GOALS)}")
    if random_trials is not None or sweep.random_trials is not None:
        raise ConfigError("--random N draws trials blindly; a search suggests them: give one of the two")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials}: expected a positive number of configurations to try")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout {timeout}: expected a positive number of seconds")
    base = sweep.search or Search()
    changed = {
        "sampler": sampler,
        "trials": trials,
        "pruner": prune,
        "metric": metric,
        "goal": goal,
        "timeout": timeout,
    }
    resolved = replace(base, **{key: value for key, value in changed.items() if value is not None})
    if resolved.trials is None and resolved.timeout is None:
        raise ConfigError(
            "a search needs to know when to stop: --trials N (suggestions in all) or --timeout S "
            "(trials: or timeout: in a sweep file's search: section)"
        )
    return resolved
