"""Expanding a sweep into trials: ids, parameters, directory names, and up-front validation.

A grid is the cartesian product of the list axes in the order given; `random` draws each trial's
values from every axis with a generator seeded by the sweep. Seeds are the innermost loop, so the
trials of one seed group sit next to each other.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from dnnlab.data.checked_spec import CheckedSpec, check_spec_mapping
from dnnlab.errors import ConfigError, DnnlabError, WriteError
from dnnlab.sweep.axes import MAX_TRIALS, grid_refusal, yaml_text
from dnnlab.sweep.definition import AUTO_SEEDS_START, Sweep

PENDING = "pending"
FINAL = ("completed", "diverged", "failed")  # a run directory's statuses that training ends with
# A search's trials may also be `paused` (at a rung, resumable) or `pruned` (stopped for good).
MAX_NAME = 96


def refused_write(error: str | None) -> bool:
    """Whether a trial's recorded error is a refused write (a full or read-only disk): such a
    trial is not final, `--resume` continues it once the disk can be written."""
    return error is not None and error.startswith(f"{WriteError.__name__}:")


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")
# What trial_dir_name makes: the id (at least 3 digits), then what differs. One plain folder name:
# no separator, never `..` or empty, so it can only name a folder inside the sweep directory.
TRIAL_NAME = re.compile(r"([0-9]{3,})(-[A-Za-z0-9._=+-]+)?")


@dataclass
class Trial:
    """One trial and what became of it (an entry of sweep.json's `trials`)."""

    id: int
    params: dict[str, Any]  # dotted key -> value; the seed as `seed`
    run: str  # its run directory, relative to the sweep directory
    status: str = PENDING
    best: dict[str, Any] | None = None  # {metric, value, epoch}
    epochs_done: int = 0
    train_seconds: float | None = None  # training, as run.json's wall_seconds
    wall_seconds: float | None = None  # the whole trial in its worker, set-up included
    error: str | None = None
    config: int | None = None  # a search's: the configuration this run is a seed of
    epochs: int | None = None  # a search's: the epochs it was given (a rung); None: the spec's
    rungs: list[dict[str, Any]] | None = None  # a search's: [{epochs, value}] at each stop
    node: str | None = None  # the Ray node it ran on (--executor ray); None: this machine

    def overrides(self, sweep: Sweep) -> list[str]:
        """The `-o` overrides that turn the sweep's spec into this trial's."""
        return [*sweep.override_texts(), *(f"{k}={yaml_text(v)}" for k, v in self.params.items())]

    def to_dict(self) -> dict[str, Any]:
        searched = {"config": self.config, "epochs": self.epochs, "rungs": self.rungs}
        return {
            "id": self.id,
            "params": self.params,
            "run": self.run,
            "status": self.status,
            "best": self.best,
            "epochs_done": self.epochs_done,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "error": self.error,
            **(searched if self.config is not None else {}),
            **({"node": self.node} if self.node is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Expansion:
    """The trials of a sweep, the keys that differ between them, and each trial's checked spec."""

    trials: list[Trial]
    varying: list[str]
    checked: list[CheckedSpec] = field(default_factory=list)


def trial_count(sweep: Sweep) -> int:
    """How many trials the sweep expands to, counted without building them."""
    seeds = len(sweep.seeds) if sweep.seeds is not None else 1
    if sweep.auto_seeds is not None:  # counted at the cap: what the sweep may grow to
        seeds = sweep.auto_seeds
    if sweep.random_trials is not None:
        return sweep.random_trials * seeds
    return math.prod(len(a.values) for a in sweep.axes if a.is_list) * seeds


def combinations(sweep: Sweep) -> list[dict[str, Any]]:
    """The parameter sets before seeds: the grid's product, or the random draws."""
    count = trial_count(sweep)
    if count > MAX_TRIALS:  # a product of a few long axes would fill the memory before training
        raise ConfigError(
            f"the sweep has {count:,} trials (the axes' values multiplied, times the seeds); "
            f"at most {MAX_TRIALS:,} are allowed: use fewer values, seeds or --random N"
        )
    if sweep.random_trials is None:
        refusal = grid_refusal(list(sweep.axes))
        if refusal:
            raise ConfigError(refusal)
        keys = [a.key for a in sweep.axes]
        return [dict(zip(keys, values)) for values in itertools.product(*(a.values for a in sweep.axes))]
    if not sweep.axes:
        raise ConfigError("--random N draws from axes: add at least one -g KEY=AXIS (or random: axes:)")
    rng = random.Random(sweep.random_seed)
    return [{a.key: a.draw(rng) for a in sweep.axes} for _ in range(sweep.random_trials)]


def expand(
    sweep: Sweep, spec_seed: int, combos: list[dict[str, Any]] | None = None
) -> tuple[list[Trial], list[str]]:
    """Every trial with its id, parameters and directory name; and the keys that differ.
    `combos`: parameter sets given in place of the sweep's axes (one trial per set and seed:
    `diagnose --try-remedies`'s remedies, each touching other keys)."""
    combos = combinations(sweep) if combos is None else combos
    seeds = sweep.seeds if sweep.seeds is not None else (None,)
    if sweep.auto_seeds is not None:
        seeds = tuple(range(AUTO_SEEDS_START))
    params = []
    for combo in combos:
        for seed in seeds:
            chosen = dict(combo)
            if seed is not None or "seed" not in chosen:
                chosen["seed"] = seed if seed is not None else spec_seed
            params.append(chosen)
    keys = list(dict.fromkeys(k for p in params for k in p))
    varying = [k for k in keys if len({repr(p.get(k)) for p in params}) > 1]
    width = name_width(max(len(params), trial_count(sweep)))
    taken = values_by_key(params)
    trials = [Trial(i, p, trial_dir_name(i, p, varying, width, taken)) for i, p in enumerate(params)]
    return trials, varying


def name_width(trials: int) -> int:
    """The digits of a trial id in its folder name: at least 3, enough for `trials` ids."""
    return max(3, len(str(trials - 1)))


def short_keys(keys: list[str]) -> dict[str, str]:
    """The last part of each dotted key, or more of it where two keys end alike."""
    names = {}
    for key in keys:
        parts = key.split(".")
        depth = 1
        while depth < len(parts) and any(
            other != key and other.split(".")[-depth:] == parts[-depth:] for other in keys
        ):
            depth += 1
        names[key] = ".".join(parts[-depth:])
    return names


def format_value(value: Any, others: list[Any] | None = None) -> str:
    """A value as it reads in a directory name: 0.001, 64x32, relu. A mapping reads as its type
    first, then its other keys with their values (`sgd_learning_rate0.01`), leaving out the keys
    on which it agrees with every mapping among `others` (the axis's other values)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(format_value(v) for v in value) or "none"
    if isinstance(value, dict):
        rivals = [o for o in others or () if isinstance(o, dict)]
        shown = [k for k, v in value.items() if not rivals or any(o.get(k, _ABSENT) != v for o in rivals)]
        parts = [format_value(value["type"])] if "type" in shown else []
        for key in (k for k in shown if k != "type"):
            item = value[key]
            parts.append(
                f"{key}_{format_value(item)}" if isinstance(item, dict) else f"{key}{format_value(item)}"
            )
        return "_".join(parts) or "none"
    return str(value)


_ABSENT = object()


def trial_dir_name(
    index: int,
    params: dict[str, Any],
    varying: list[str],
    width: int = 3,
    values: dict[str, list[Any]] | None = None,
) -> str:
    """`003-activation=elu-lr=0.001-seed=2`: the id, then what differs; filesystem-safe and short
    (the id alone keeps names unique). A path names its folder or file (`transfer.run=a` for
    runs/a), with as many parent folders as tell it from the other paths of `values` (every value
    each key takes in the sweep), so runs/x/a and runs/y/a read `x_a` and `y_a`."""
    short = short_keys(varying)
    parts = []
    for key in varying:
        if key not in params:
            continue
        value = params[key]
        if _path_parts(value):
            name = short[key] if "." in short[key] else ".".join(key.split(".")[-2:])
            parts.append(f"{name}={path_name(value, (values or {}).get(key, [value]))}")
        else:
            parts.append(f"{short[key]}={format_value(value, (values or {}).get(key))}")
    name = _UNSAFE.sub("_", "-".join([f"{index:0{width}d}", *parts])).strip("_")
    return name[:MAX_NAME].rstrip("-_.")


def values_by_key(params: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every value each key takes among the trials' `params`, for `trial_dir_name`."""
    found: dict[str, list[Any]] = {}
    for chosen in params:
        for key, value in chosen.items():
            found.setdefault(key, []).append(value)
    return found


def path_name(value: str, others: list[Any]) -> str:
    """The last part of the path `value`, with as many parents as needed to differ from every
    other path among `others` that ends alike (a path equal to it once normalized aside)."""
    parts = _path_parts(value)
    rivals = {p for p in map(_path_parts, others) if p and p != parts}
    size = 1
    while size < len(parts) and any(r[-size:] == parts[-size:] for r in rivals):
        size += 1
    return "/".join(parts[-size:])


def _path_parts(value: Any) -> tuple[str, ...]:
    """The folders and file of a path-like string (one with a / or \\), else ()."""
    if not isinstance(value, str) or not re.search(r"[/\\]", value):
        return ()
    return tuple(part for part in re.split(r"[/\\]+", value) if part not in ("", "."))


def is_trial_name(name: Any, trial_id: int) -> bool:
    """Whether `name` is a run directory name trial_dir_name gives the trial `trial_id`."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        return False
    match = TRIAL_NAME.fullmatch(name)
    return match is not None and int(match.group(1)) == trial_id


def check_trials(sweep: Sweep, trials: list[Trial]) -> list[CheckedSpec]:
    """Validate every trial's spec before any starts; the first bad one refuses the sweep."""
    checked = []
    for trial in trials:
        try:
            checked.append(check_spec_mapping(sweep.spec, trial.overrides(sweep), f"sweep spec {sweep.name}"))
        except DnnlabError as exc:
            raise ConfigError(f"trial {trial.run}: {exc}") from None
    return checked


def expand_and_check(sweep: Sweep, combos: list[dict[str, Any]] | None = None) -> Expansion:
    """Expand the sweep (or `combos`, see `expand`) and validate every trial (nothing is written)."""
    base = check_spec_mapping(sweep.spec, sweep.override_texts(), f"sweep spec {sweep.name}")
    trials, varying = expand(sweep, base.spec.seed, combos)
    if not trials:
        raise ConfigError("the sweep has no trials")
    return Expansion(trials, varying, check_trials(sweep, trials))


def group_key(params: dict[str, Any]) -> str:
    """A configuration: a trial's parameters but its seed (JSON, so a resumed record matches)."""
    return json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True, default=repr)
