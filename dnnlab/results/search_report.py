"""The report's section on a search sweep: how the best improved, which parameters mattered,
and where the good configurations lie.

Read from the sweep directory alone: sweep.json (through `rundir.search_trials`, untrusted) and,
for the parameters' importance, Optuna's study journal when it is there and Optuna is installed.
Figures are matplotlib PNGs through `files.figures`; nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from dnnlab.files.figures import png_bytes, pyplot
from dnnlab.rundir.search_trials import STOPPED_EARLY, SearchRecord, SearchTrial, read_search


def find_searches(paths: list[Path]) -> list[SearchRecord]:
    """The search sweeps among `paths` (a sweep directory, or a folder holding some)."""
    found: list[SearchRecord] = []
    for path in paths:
        candidates = [path] if (path / "sweep.json").is_file() else sorted(path.glob("*/sweep.json"))
        for candidate in candidates:
            search = read_search(candidate.parent if candidate.name == "sweep.json" else candidate)
            if search is not None and search.trials and search.path not in [s.path for s in found]:
                found.append(search)
    return found


def best_so_far(search: SearchRecord) -> list[tuple[int, int, float]]:
    """(trials started, epochs spent, best value so far) after each trial with a value, by id:
    the epochs of every trial count, those stopped early included."""
    sign = 1 if search.goal == "minimize" else -1
    points, epochs, best = [], 0, None
    for count, trial in enumerate(search.trials, start=1):
        epochs += trial.epochs
        if trial.value is not None and (best is None or sign * trial.value < sign * best):
            best = trial.value
        if best is not None:
            points.append((count, epochs, best))
    return points


def best_so_far_png(search: SearchRecord) -> bytes:
    plt = pyplot()
    points = best_so_far(search)
    fig, (by_trial, by_epoch) = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, index, label in ((by_trial, 0, "trials started"), (by_epoch, 1, "epochs spent (all trials)")):
        ax.step([p[index] for p in points], [p[2] for p in points], where="post", color="C0")
        ax.scatter(
            [_x(search, t, index) for t in search.trials if t.value is not None],
            [t.value for t in search.trials if t.value is not None],
            s=12,
            c=["C1" if t.status in STOPPED_EARLY else "C2" for t in search.trials if t.value is not None],
        )
        ax.set_xlabel(label)
        ax.set_ylabel(f"best {search.metric}")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{search.sampler} search, pruner {search.pruner}: best {search.metric} so far "
        "(green: full budget, orange: stopped early)",
        fontsize=10,
    )
    fig.tight_layout()
    return png_bytes(fig)


def _x(search: SearchRecord, trial: SearchTrial, index: int) -> int:
    position = search.trials.index(trial)
    return position + 1 if index == 0 else sum(t.epochs for t in search.trials[: position + 1])


def parameter_keys(search: SearchRecord) -> list[str]:
    keys = list(dict.fromkeys(k for t in search.trials for k in t.params if k != "seed"))
    return [k for k in keys if len({_text(t.params.get(k)) for t in search.trials}) > 1]


def parallel_coordinates_png(search: SearchRecord) -> bytes | None:
    """One line per trial with a value across its parameters and the metric, each axis scaled to
    [0, 1] (numbers, on a log scale when they span more than 20x; other values by code); None
    when no parameter varies."""
    trials = [t for t in search.trials if t.value is not None]
    keys = parameter_keys(search)
    if not trials or not keys:
        return None
    plt = pyplot()
    columns = [_scaled([t.params.get(k) for t in trials]) for k in keys]
    columns.append(_scaled([t.value for t in trials]))
    names = [k.rsplit(".", 1)[-1] for k in keys] + [search.metric]
    values = [t.value for t in trials]
    low, high = min(values), max(values)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names)), 4))
    cmap = plt.get_cmap("viridis")
    order = sorted(range(len(trials)), key=lambda i: values[i], reverse=search.goal == "minimize")
    for i in order:  # the best drawn last, on top
        good = (values[i] - low) / (high - low) if high > low else 1.0
        good = 1 - good if search.goal == "minimize" else good
        stopped = trials[i].status in STOPPED_EARLY
        ax.plot(
            range(len(names)),
            [column[0][i] for column in columns],
            color=cmap(good),
            alpha=0.45 if stopped else 0.95,
            linestyle="--" if stopped else "-",
            linewidth=1 if stopped else 1.8,
        )
    for x, (_, ticks) in enumerate(columns):
        ax.axvline(x, color="#999", linewidth=0.8)
        for y, label in ticks:
            ax.text(x + 0.03, y, label, fontsize=7, va="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.6)
    ax.set_title(
        f"{len(trials)} trials, brighter = better {search.metric}; dashed: stopped early", fontsize=10
    )
    fig.tight_layout()
    return png_bytes(fig)


def _scaled(values: list[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """Values mapped to [0, 1] and a few (position, label) ticks."""
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if numbers:
        log = min(values) > 0 and max(values) / min(values) > 20
        raw = [math.log10(v) if log else float(v) for v in values]
        low, high = min(raw), max(raw)
        span = high - low or 1.0
        ticks = (
            [(0.0, f"{min(values):.3g}"), (1.0, f"{max(values):.3g}")]
            if high > low
            else [(0.5, f"{values[0]:.3g}")]
        )
        return [(r - low) / span if high > low else 0.5 for r in raw], ticks
    codes: dict[str, int] = {}
    for value in values:
        codes.setdefault(_text(value), len(codes))
    step = 1 / max(1, len(codes) - 1)
    positions = [codes[_text(v)] * step if len(codes) > 1 else 0.5 for v in values]
    ticks = [(code * step if len(codes) > 1 else 0.5, text[:18]) for text, code in codes.items()]
    return positions, ticks


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value["type"]
    return json.dumps(value, sort_keys=True, default=str)


def optuna_importance(search: SearchRecord) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances (its default evaluator) on the study in the sweep directory,
    and a note saying where they come from or why there are none."""
    if not search.study.is_file():
        return None, f"no {search.study.name} in the sweep directory: no importance from Optuna"
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
    except ModuleNotFoundError:
        return None, "Optuna is not installed (pip install 'dnnlab[search]'): no importance from Optuna"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        storage = JournalStorage(JournalFileBackend(str(search.study)))
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        with warnings.catch_warnings():  # "too few trials: equal importances" is said in the note
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except Exception as exc:  # noqa: BLE001 - an untrusted journal, or too few finished trials
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"Optuna could not rank the parameters of {search.study.name} ({first[:200]})"
    finished = sum(t.state.name == "COMPLETE" for t in study.trials)
    note = (
        f"optuna.importance.get_param_importances (Optuna's default evaluator) on the {finished} "
        f"finished trial(s) of {search.study.name}: how much of {search.metric}'s variation each "
        "parameter accounts for (importances sum to 1; with few finished trials they say little)"
    )
    return importances, note
