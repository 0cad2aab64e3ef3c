"""sweep.json read back by `sweep --resume`: untrusted input, checked field by field before
anything is written or removed.

A sweep directory may have been copied, edited or damaged, and its record drives what is trained
and where: each trial's `run` names a folder that training writes and may remove. So every field
that is used must have the type dnnlab writes, trial ids and folder names must be unique, each
`run` must be the folder name its id gives (a plain name, so inside the sweep directory), and
counts stay within what a sweep can have. Any problem is one line naming the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError
from dnnlab.rundir.layout import STATUSES
from dnnlab.spec.base import NAME_PATTERN
from dnnlab.spec.models import MAX_SEED
from dnnlab.spec.wording import short
from dnnlab.sweep.axes import MAX_TRIALS
from dnnlab.sweep.definition import AUTO_SEEDS_LIMIT, AUTO_SEEDS_START
from dnnlab.sweep.rungs import DUPLICATE, FINISHED, PAUSED, RUNNING
from dnnlab.sweep.trials import PENDING, is_trial_name

RECORD_STATUSES = ("running", "completed", "failed", "interrupted")
TRIAL_STATUSES = (PENDING, *STATUSES, PAUSED, "pruned")
CONFIG_STATUSES = (RUNNING, PAUSED, *FINISHED)
MODES = ("grid", "random", "search")
AUTO_STOPS = ("separated", "cap")  # why `--seeds auto` stopped adding seeds (auto_seeds.SEPARATED, AT_CAP)
MAX_VALUE_DEPTH = 16  # nesting of a trial's parameter value; a spec value needs two or three
_FIX = "sweep.json was edited or damaged; restore it or start the sweep again"


class _Refused(Exception):
    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")


def check_record(data: Any, path: Path, version: int) -> None:
    """Raise a one-line RunDirError naming the first field of `data` (sweep.json's content)
    that dnnlab would not have written; `version`: the newest record version this dnnlab reads."""
    try:
        _check_record(data, version)
    except _Refused as refused:
        raise RunDirError(f"{path}: {refused}; {_FIX}") from None


def _check_record(data: Any, version: int) -> None:
    if not isinstance(data, dict):
        raise _Refused("the record", "expected a JSON object")
    found = data.get("version", 1)
    if not _is_int(found) or found < 1:
        raise _Refused("version", f"expected a positive integer; received {short(found)}")
    if found > version:
        raise _Refused("version", f"{found} is newer than this dnnlab reads ({version}); upgrade dnnlab")
    name = _field(data, "name", str)
    if not re.fullmatch(NAME_PATTERN, name):
        raise _Refused("name", f"{short(name)} cannot name a sweep")
    _choice(data, "status", RECORD_STATUSES)
    _choice(data, "mode", MODES)
    _field(data, "axes", dict)
    _field(data, "started", str)
    _optional(data, "finished", str)
    _strings(data, "varying")
    if "command" in data:
        _strings(data, "command")
    seeds = data.get("seeds")
    if seeds is not None and not (
        isinstance(seeds, list) and len(seeds) <= MAX_TRIALS and all(_is_seed(s) for s in seeds)
    ):
        raise _Refused("seeds", f"expected null or a list of at most {MAX_TRIALS:,} seeds 0..{MAX_SEED}")
    trials = _field(data, "trials", list)
    search = data["mode"] == "search"  # a search records its trials as they are suggested
    if not (0 if search else 1) <= len(trials) <= MAX_TRIALS:
        raise _Refused("trials", f"{len(trials):,} trials; a sweep has 1 to {MAX_TRIALS:,}")
    if search:
        _field(data, "search", dict)
        configs = _field(data, "configs", list)
        if len(configs) > MAX_TRIALS:
            raise _Refused("configs", f"{len(configs):,} configurations; a search has at most {MAX_TRIALS:,}")
        for index, config in enumerate(configs):
            _check_config(config, f"configs[{index}]")
            _check_duplicate(configs, index)
    if data.get("auto_seeds") is not None:
        if search:
            raise _Refused("auto_seeds", "a search records no auto_seeds")
        _check_auto_seeds(data["auto_seeds"])
    ids: set[int] = set()
    runs: set[str] = set()
    for index, trial in enumerate(trials):
        _check_trial(trial, f"trials[{index}]")
        if trial["id"] in ids:
            raise _Refused(f"trials[{index}].id", f"{trial['id']} is listed twice")
        if trial["run"] in runs:
            raise _Refused(f"trials[{index}].run", f"{short(trial['run'])} is listed twice")
        ids.add(trial["id"])
        runs.add(trial["run"])


def _check_trial(trial: Any, where: str) -> None:
    if not isinstance(trial, dict):
        raise _Refused(where, "expected a JSON object")
    trial_id = trial.get("id")
    if not _is_int(trial_id) or not 0 <= trial_id < MAX_TRIALS:
        raise _Refused(f"{where}.id", f"expected an integer 0..{MAX_TRIALS - 1}; received {short(trial_id)}")
    if not is_trial_name(trial.get("run"), trial_id):
        raise _Refused(
            f"{where}.run",
            f"{short(trial.get('run'))} is not trial {trial_id}'s folder name ({trial_id:03d} or "
            f"{trial_id:03d}-..., letters, digits and ._=+- only), so it could name a place outside the "
            "sweep directory",
        )
    params = trial.get("params")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _Refused(f"{where}.params", "expected a JSON object of dotted spec keys and values")
    for key, value in params.items():
        if _depth(value) > MAX_VALUE_DEPTH:
            raise _Refused(f"{where}.params.{short(key)}", f"nested more than {MAX_VALUE_DEPTH} levels")
    status = trial.get("status", PENDING)
    if status not in TRIAL_STATUSES:
        raise _Refused(
            f"{where}.status", f"expected one of {', '.join(TRIAL_STATUSES)}; received {short(status)}"
        )
    best = trial.get("best")
    if best is not None and not (
        isinstance(best, dict)
        and isinstance(best.get("metric"), str)
        and (best.get("value") is None or _is_number(best.get("value")))
        and (best.get("epoch") is None or _is_int(best.get("epoch")))
    ):
        raise _Refused(f"{where}.best", "expected null or {metric, value, epoch}")
    epochs = trial.get("epochs_done", 0)
    if not _is_int(epochs) or epochs < 0:
        raise _Refused(f"{where}.epochs_done", f"expected a count; received {short(epochs)}")
    for key in ("train_seconds", "wall_seconds"):
        if trial.get(key) is not None and not _is_number(trial[key]):
            raise _Refused(f"{where}.{key}", f"expected null or a number; received {short(trial[key])}")
    _optional(trial, "error", str, where)
    _optional(trial, "node", str, where)
    for key in ("config", "epochs"):  # a search's: the configuration it runs, the epochs it is given
        if trial.get(key) is not None and not (_is_int(trial[key]) and trial[key] >= 0):
            raise _Refused(f"{where}.{key}", f"expected null or a count; received {short(trial[key])}")


def _check_config(config: Any, where: str) -> None:
    if not isinstance(config, dict):
        raise _Refused(where, "expected a JSON object")
    for key in ("id", "number", "max_epochs", "bracket", "epochs"):
        value = config.get(key, 0)
        if not _is_int(value) or not 0 <= value <= MAX_TRIALS * 1000:
            raise _Refused(f"{where}.{key}", f"expected a count; received {short(value)}")
    params = config.get("params")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _Refused(f"{where}.params", "expected a JSON object of dotted spec keys and values")
    if config.get("status", RUNNING) not in CONFIG_STATUSES:
        raise _Refused(f"{where}.status", f"expected one of {', '.join(CONFIG_STATUSES)}")
    rungs = config.get("rungs", [])
    if not isinstance(rungs, list) or not all(
        isinstance(r, dict)
        and _is_int(r.get("epochs"))
        and (r.get("value") is None or _is_number(r["value"]))
        for r in rungs
    ):
        raise _Refused(f"{where}.rungs", "expected a list of {epochs, value}")
    if config.get("value") is not None and not _is_number(config["value"]):
        raise _Refused(f"{where}.value", f"expected null or a number; received {short(config['value'])}")
    _optional(config, "error", str, where)


def _check_duplicate(configs: list[dict[str, Any]], index: int) -> None:
    """A duplicate names an earlier configuration that is no duplicate itself (the driver tells
    the study the original's result through it)."""
    config = configs[index]
    original = config.get("duplicate_of")
    duplicate = config.get("status") == DUPLICATE
    if original is None and not duplicate:
        return
    if not (
        duplicate
        and _is_int(original)
        and 0 <= original < index
        and configs[original].get("duplicate_of") is None
    ):
        raise _Refused(
            f"configs[{index}].duplicate_of",
            "expected, with status duplicate only, the id of an earlier configuration that is no duplicate",
        )


def _check_auto_seeds(state: Any) -> None:
    """`--seeds auto`'s {max, rounds: [{seeds, unseparated}], stop, unseparated}."""
    if not isinstance(state, dict):
        raise _Refused("auto_seeds", "expected a JSON object")
    cap = state.get("max")
    if not _is_int(cap) or not AUTO_SEEDS_START <= cap <= AUTO_SEEDS_LIMIT:
        raise _Refused(
            "auto_seeds.max", f"expected {AUTO_SEEDS_START}..{AUTO_SEEDS_LIMIT} seeds; received {short(cap)}"
        )
    rounds = _field(state, "rounds", list, "auto_seeds")
    if not 1 <= len(rounds) <= cap:
        raise _Refused("auto_seeds.rounds", f"{len(rounds):,} rounds; a cap of {cap} allows 1 to {cap}")
    for index, entry in enumerate(rounds):
        where = f"auto_seeds.rounds[{index}]"
        if not isinstance(entry, dict):
            raise _Refused(where, "expected a JSON object")
        seeds = entry.get("seeds")
        if not (isinstance(seeds, list) and len(seeds) <= cap and all(_is_seed(s) for s in seeds)):
            raise _Refused(f"{where}.seeds", f"expected a list of at most {cap} seeds 0..{MAX_SEED}")
        _labels(entry, "unseparated", where)
    if state.get("stop") not in (None, *AUTO_STOPS):
        raise _Refused("auto_seeds.stop", f"expected null or one of {', '.join(AUTO_STOPS)}")
    if "unseparated" in state:
        _labels(state, "unseparated", "auto_seeds")


def _labels(data: dict[str, Any], key: str, where: str) -> None:
    value = _field(data, key, list, where)
    if len(value) > MAX_TRIALS or not all(isinstance(item, str) for item in value):
        raise _Refused(f"{where}.{key}", f"expected a list of at most {MAX_TRIALS:,} configuration names")


# ---------------------------------------------------------------- field checks


def _field(data: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    name = f"{where}.{key}" if where else key
    if key not in data:
        raise _Refused(name, "missing")
    if not isinstance(data[key], kind):
        raise _Refused(name, f"expected a {_KINDS[kind]}; received {short(data[key])}")
    return data[key]


def _optional(data: dict[str, Any], key: str, kind: type, where: str = "") -> None:
    if data.get(key) is not None:
        _field(data, key, kind, where)


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    if data.get(key) not in allowed:
        raise _Refused(key, f"expected one of {', '.join(allowed)}; received {short(data.get(key))}")


def _strings(data: dict[str, Any], key: str) -> None:
    value = _field(data, key, list)
    if not all(isinstance(item, str) for item in value):
        raise _Refused(key, "expected a list of strings")


_KINDS = {str: "string", dict: "JSON object", list: "list"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _is_seed(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_SEED


def _depth(value: Any, level: int = 0) -> int:
    """How deeply `value` nests (stops counting past MAX_VALUE_DEPTH)."""
    if level > MAX_VALUE_DEPTH or not isinstance(value, (dict, list)):
        return level
    items = value.values() if isinstance(value, dict) else value
    return max((_depth(item, level + 1) for item in items), default=level + 1)
