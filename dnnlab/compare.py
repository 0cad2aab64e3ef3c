"""Compare run directories: load them tolerantly, find what differs, rank them, render the table.

Everything here reads only the files of a run directory (config.yaml, run.json, metrics.csv) and
never imports TensorFlow or Keras, so `dnnlab compare` starts fast. A damaged run directory still
gets a row, marked with a note, and never stops the comparison.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from dnnlab.errors import DnnlabError, RunDirError

RUN_FILES = ("run.json", "config.yaml", "metrics.csv")
FORMATS = ("table", "csv", "json", "markdown")
# Spec keys that say most about how a network trains; shown even when every run agrees on them.
TELLING_KEYS = (
    "model.activation",
    "model.initializer",
    "model.normalization",
    "training.optimizer",
    "training.schedule",
    "model.dropout",
)
# metrics.csv columns that are bookkeeping, not train or validation metrics.
NOT_METRICS = ("epoch", "lr", "seconds")
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "mape", "msle", "crossentropy", "hinge")
_TIMESTAMP_SUFFIX = re.compile(r"-\d{8}-\d{6}(-\d+)?$")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Absent:
    """A value that is not there, as opposed to a spec value of null."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


MISSING = _Absent("-")  # a key this run's config lacks, or a metric it never recorded
UNKNOWN = _Absent("?")  # a spec value of a run whose config.yaml cannot be read


@dataclass(frozen=True)
class Best:
    """The best value of one metric in a run and the epoch (as in metrics.csv) where it occurred."""

    metric: str
    value: float | None
    epoch: int | None
    mode: str | None = None  # as run.json records it; None where compare worked it out


@dataclass
class Run:
    """What compare knows about one run directory; `notes` says what was damaged or missing."""

    path: Path
    name: str
    status: str
    epochs: int
    epochs_planned: int | None
    wall_seconds: float | None
    config: dict[str, Any] | None
    history: dict[str, list[float]]
    monitored: Best | None
    notes: list[str] = field(default_factory=list)
    best: Best | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float]:
        """The train and validation metrics of the last finished epoch."""
        return {k: v[-1] for k, v in self.history.items() if k not in NOT_METRICS and v}


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over the seeds of a group (std is None for one seed)."""

    mean: float | None
    std: float | None
    n: int


@dataclass
class SeedGroup:
    """Runs whose specs differ only in `seed`: one row with mean +- std over the seeds."""

    runs: list[Run]

    @property
    def seeds(self) -> list[Any]:
        return [r.config.get("seed") if r.config else None for r in self.runs]

    @property
    def best(self) -> Stat:
        return _stat([r.best.value if r.best else None for r in self.runs])

    @property
    def params(self) -> dict[str, Any]:
        return self.runs[0].params


@dataclass
class Comparison:
    """Runs ranked best first by `metric`, the spec keys that differ, and what was skipped."""

    runs: list[Run]
    metric: str
    mode: str
    differing_keys: list[str]
    context_keys: list[str]
    skipped: list[Path]
    notes: list[str]
    groups: list[SeedGroup] | None = None

    @property
    def best_run(self) -> Run | None:
        first = self.runs[0]
        return first if first.best and first.best.value is not None else None


# ---------------------------------------------------------------- finding and loading run dirs


def is_run_dir(path: Path) -> bool:
    """A run directory is a folder with run.json, config.yaml or metrics.csv in it."""
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def find_run_dirs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split the given paths into run directories and skipped paths.

    A folder that is not a run but holds runs (e.g. `runs/`) stands for the runs inside it.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if is_run_dir(path):
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if is_run_dir(p)) if path.is_dir() else []
        if children:
            found.extend(children)
        else:
            skipped.append(path)
    return list(dict.fromkeys(found)), skipped


def load_runs(paths: list[Path]) -> list[Run]:
    """Load run directories, parsing each distinct section of their config.yaml files once."""
    sections: dict[str, Any] = {}
    return [load_run(p, sections) for p in paths]


def load_run(path: Path, sections: dict[str, Any] | None = None) -> Run:
    """Read one run directory; whatever is missing or damaged becomes a note, never an error.

    `sections` memoizes parsed config sections across runs (see `parse_spec`); the configs it
    returns share objects and must not be mutated.
    """
    notes: list[str] = []
    sections = {} if sections is None else sections
    info = _read_mapping(path / "run.json", json.loads, notes) or {}
    config = _read_mapping(path / "config.yaml", lambda text: parse_spec(text, sections), notes)
    history = _read_metrics(path / "metrics.csv", notes)

    last_epoch = _int_or_none(history["epoch"][-1]) if history.get("epoch") else None
    epochs = max(_int_or_none(info.get("epochs_done")) or 0, 0 if last_epoch is None else last_epoch + 1)
    wall = _float_or_none(info.get("wall_seconds"))
    if wall is None and history.get("seconds"):
        wall = sum(s for s in history["seconds"] if math.isfinite(s))
    name = info.get("name") or (config or {}).get("name") or _TIMESTAMP_SUFFIX.sub("", path.name)
    return Run(
        path=path,
        name=str(name),
        status=str(info.get("status") or "unknown"),
        epochs=epochs,
        epochs_planned=_int_or_none(info.get("epochs_planned")),
        wall_seconds=wall,
        config=config,
        history=history,
        monitored=_monitored(info.get("best")),
        notes=notes,
    )


def _read_mapping(path: Path, parse: Callable[[str], Any], notes: list[str]) -> dict[str, Any] | None:
    """The mapping `parse` makes of the file, or None with a note: missing, or unreadable."""
    text = _read_text(path, notes)
    if text is None:
        return None
    try:
        value = parse(text)
    except (ValueError, yaml.YAMLError):
        value = None
    if not isinstance(value, dict):
        notes.append(f"{path.name} unreadable")
        return None
    return value


def _read_text(path: Path, notes: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        notes.append(f"missing {path.name}")
    except (OSError, ValueError):
        notes.append(f"{path.name} unreadable")
    return None


def parse_spec(text: str, sections: dict[str, Any]) -> Any:
    """Parse a config.yaml, reusing `sections` for top-level sections already seen.

    Parsing YAML is most of the time compare takes, and the runs of a sweep repeat the same
    `data:`, `model:` and `training:` sections, so each distinct top-level section (a line at
    column 0 and its indented lines) is parsed once. Whatever does not split cleanly into
    mappings (flow style, documents markers, anchors shared across sections) is parsed whole.
    """
    chunks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "#", "\n", "\r") or not chunks:
            chunks.append([])
        chunks[-1].append(line)
    config: dict[str, Any] = {}
    for chunk in chunks:
        chunk_text = "".join(chunk)
        if chunk_text not in sections:
            try:
                sections[chunk_text] = yaml.load(chunk_text, Loader=_YAML_LOADER)
            except yaml.YAMLError:
                sections[chunk_text] = None
        part = sections[chunk_text]
        if isinstance(part, dict):
            config.update(part)
        elif part is not None or chunk_text.strip() and not chunk_text.lstrip().startswith("#"):
            return yaml.load(text, Loader=_YAML_LOADER)  # not a section: a marker, an error, ...
    return config or yaml.load(text, Loader=_YAML_LOADER)


def _read_metrics(path: Path, notes: list[str]) -> dict[str, list[float]]:
    """Parse metrics.csv into columns; a line with missing fields or bad numbers is dropped."""
    text = _read_text(path, notes)
    if text is None:
        return {}
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        notes.append("empty metrics.csv")
        return {}
    header = [h.strip() for h in lines[0].split(",")]
    rows: list[list[float]] = []
    dropped: list[int] = []
    for number, line in enumerate(lines[1:], 2):
        row = _parse_row(line, len(header))
        if row is None:
            dropped.append(number)
        else:
            rows.append(row)
    if dropped == [len(lines)]:
        notes.append("truncated metrics.csv")
    elif dropped:
        notes.append(f"metrics.csv: dropped malformed line(s) {', '.join(map(str, dropped))}")
    columns = zip(*rows) if rows else ([] for _ in header)
    return {name: list(values) for name, values in zip(header, columns)}


def _parse_row(line: str, width: int) -> list[float] | None:
    """The numbers of one metrics.csv line (an empty cell is nan), or None if it is malformed."""
    cells = line.split(",")
    if len(cells) != width:
        return None
    try:
        return list(map(float, cells))
    except ValueError:
        pass
    try:  # the slow path: only lines with an empty cell get here and survive
        return [float(c) if c.strip() else math.nan for c in cells]
    except ValueError:
        return None


def _monitored(best: Any) -> Best | None:
    """The monitored metric's best as run.json records it."""
    if not isinstance(best, dict) or not isinstance(best.get("metric"), str):
        return None
    mode = best.get("mode") if best.get("mode") in ("min", "max") else None
    return Best(best["metric"], _float_or_none(best.get("value")), _int_or_none(best.get("epoch")), mode)


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf); nan is a ValueError
        return None


# ---------------------------------------------------------------- metrics and ranking


def metric_mode(metric: str) -> str:
    """`min` for losses and errors (mse, mae, ...), `max` for accuracy-like metrics."""
    name = metric.lower().removeprefix("val_")
    return "min" if any(word in name for word in _LOWER_IS_BETTER) else "max"


def best_of(run: Run, metric: str, mode: str) -> Best:
    """The best epoch of `metric` in metrics.csv, or run.json's record when the csv lacks it."""
    values, epochs = run.history.get(metric), run.history.get("epoch")
    finite = [(v, i) for i, v in enumerate(values or ()) if math.isfinite(v)]
    if finite:
        pick = min if mode == "min" else max
        value, index = pick(finite, key=lambda pair: pair[0])
        epoch = _int_or_none(epochs[index]) if epochs else index
        return Best(metric, value, epoch)
    if run.monitored and run.monitored.metric == metric:
        return run.monitored
    return Best(metric, None, None)


def _default_metric(runs: list[Run], notes: list[str]) -> str:
    """The metric most runs monitor; val_loss or loss when no run.json says."""
    counts = Counter(r.monitored.metric for r in runs if r.monitored)
    if counts:
        metric = counts.most_common(1)[0][0]
        if len(counts) > 1:
            names = ", ".join(sorted(counts))
            notes.append(f"runs monitor different metrics ({names}); ranking by {metric}, "
                         "choose another with --metric")
        return metric
    return "val_loss" if any("val_loss" in r.history for r in runs) else "loss"


def _available_metrics(runs: list[Run]) -> list[str]:
    names = {k for r in runs for k in r.history if k not in NOT_METRICS}
    names |= {r.monitored.metric for r in runs if r.monitored}
    return sorted(names)


def _rank(value: float | None, mode: str) -> tuple[int, float]:
    """Sort key: best value first, runs without a value last."""
    if value is None:
        return (1, 0.0)
    return (0, value if mode == "min" else -value)


# ---------------------------------------------------------------- differing spec keys


def differing_keys(configs: list[dict[str, Any]], ignore: tuple[str, ...] = ("name",)) -> dict[str, list[Any]]:
    """Dotted spec keys whose values differ between configs, with each config's value.

    A mapping is split into its own dotted subkeys while every config has one of the same `type`
    (so only `training.optimizer.learning_rate` shows when just the rate differs); when the type
    differs, or one config has a mapping where another has null, the whole mapping is one key.
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
    if all(isinstance(v, dict) for v in values) and len({repr(v.get("type")) for v in values}) == 1:
        for key in dict.fromkeys(k for v in values for k in v):
            _collect_differences([v.get(key, MISSING) for v in values], f"{path}.{key}", out)
        return
    out[path] = values


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


# ---------------------------------------------------------------- building the comparison


def compare(paths: list[Path], metric: str | None = None, group_seeds: bool = False) -> Comparison:
    """Load the run directories among `paths` and rank them by `metric`, best first.

    Raises RunDirError when no path is a run directory, DnnlabError for a metric no run records.
    """
    run_dirs, skipped = find_run_dirs(paths)
    if not run_dirs:
        given = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise RunDirError(
            f"No run directories found in {given or 'the arguments'}: expected folders with "
            "run.json, config.yaml or metrics.csv (as `dnnlab train` writes under runs/). "
            "Pass run directories, e.g. `dnnlab compare runs/*`."
        )
    runs = load_runs(run_dirs)
    notes: list[str] = []
    if metric is None:
        metric = _default_metric(runs, notes)
    elif metric not in _available_metrics(runs):
        raise DnnlabError(
            f"Received --metric {metric}, which no run records. "
            f"Expected one of: {', '.join(_available_metrics(runs))}."
        )
    mode = _mode_for(runs, metric)
    for run in runs:
        run.best = best_of(run, metric, mode)
    runs.sort(key=lambda r: _rank(r.best.value, mode))

    readable = [r for r in runs if r.config is not None]
    ignore = ("name", "seed") if group_seeds else ("name",)
    diffs = differing_keys([r.config for r in readable], ignore)
    for i, run in enumerate(readable):
        run.params = {key: values[i] for key, values in diffs.items()}
    keys = list(diffs)
    context = [
        k for k in TELLING_KEYS
        if not any(d == k or d.startswith(k + ".") for d in keys)
        and any(_lookup(r.config, k) is not MISSING for r in readable)
    ]
    for run in readable:
        run.params.update({k: _lookup(run.config, k) for k in context})
    groups = group_by_seed(runs, mode) if group_seeds else None
    return Comparison(runs, metric, mode, keys, context, skipped, notes, groups)


def _mode_for(runs: list[Run], metric: str) -> str:
    """The mode run.json records for `metric`, else the one its name implies."""
    for run in runs:
        if run.monitored and run.monitored.metric == metric and run.monitored.mode:
            return run.monitored.mode
    return metric_mode(metric)


def group_by_seed(runs: list[Run], mode: str) -> list[SeedGroup]:
    """Gather runs whose specs are equal but for `seed`; groups are ranked by their mean best."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        if run.config is None:
            key = f"unreadable:{run.path}"
        else:
            spec = {k: v for k, v in run.config.items() if k not in ("name", "seed")}
            key = json.dumps(spec, sort_keys=True, default=str)
        groups.setdefault(key, SeedGroup([])).runs.append(run)
    return sorted(groups.values(), key=lambda g: _rank(g.best.mean, mode))


def _stat(values: list[float | None]) -> Stat:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Stat(None, None, 0)
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return Stat(statistics.fmean(finite), std, len(finite))


def messages(comparison: Comparison) -> list[str]:
    """The notes for stderr: skipped paths (in one line) and caveats about the ranking."""
    lines = list(comparison.notes)
    if comparison.skipped:
        shown = ", ".join(str(p) for p in comparison.skipped[:5])
        more = f" and {len(comparison.skipped) - 5} more" if len(comparison.skipped) > 5 else ""
        lines.insert(0, f"skipped {len(comparison.skipped)} path(s) that are not run directories "
                        f"(no run.json, config.yaml or metrics.csv): {shown}{more}")
    return lines


# ---------------------------------------------------------------- rows shared by every format


def table_rows(comparison: Comparison, diff_only: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Headers and one row per run (or per seed group) with raw values, best first.

    Values are str, int, float, Stat, a spec value, MISSING (not recorded) or UNKNOWN (config.yaml
    unreadable); each renderer formats them for its medium.
    """
    keys = comparison.differing_keys + ([] if diff_only else comparison.context_keys)
    finals = list(dict.fromkeys(k for r in comparison.runs for k in r.final))
    best_col = f"best_{comparison.metric}"
    rows = []
    if comparison.groups is None:
        for rank, run in enumerate(comparison.runs, 1):
            final = run.final
            rows.append({
                "rank": rank,
                "run": run.path.name,
                "status": run.status,
                "epochs": run.epochs,
                best_col: _recorded(run.best.value),
                "best_epoch": _recorded(run.best.epoch),
                **{f"final_{m}": final.get(m, MISSING) for m in finals},
                "wall_seconds": _recorded(run.wall_seconds),
                **_spec_cells(run, keys),
                "notes": "; ".join(run.notes),
            })
    else:
        for rank, group in enumerate(comparison.groups, 1):
            runs = group.runs
            statuses = Counter(r.status for r in runs)
            rows.append({
                "rank": rank,
                "run": runs[0].name,
                "seeds": len(runs),
                "status": ", ".join(f"{s} {n}" for s, n in statuses.items()) if len(statuses) > 1
                else runs[0].status,
                "epochs": _stat([r.epochs for r in runs]),
                best_col: group.best,
                "best_epoch": _stat([r.best.epoch for r in runs]),
                **{f"final_{m}": _stat([r.final.get(m) for r in runs]) for m in finals},
                "wall_seconds": _stat([r.wall_seconds for r in runs]),
                **_spec_cells(runs[0], keys),
                "notes": "; ".join(dict.fromkeys(n for r in runs for n in r.notes)),
            })
    headers = list(rows[0]) if rows else []
    if "notes" in headers and not any(row["notes"] for row in rows):
        headers.remove("notes")
    return headers, rows


def _recorded(value: Any) -> Any:
    return MISSING if value is None else value


def _spec_cells(run: Run, keys: list[str]) -> dict[str, Any]:
    if run.config is None:
        return {k: UNKNOWN for k in keys}
    return {k: run.params.get(k, MISSING) for k in keys}


def format_value(value: Any) -> str:
    """Short human text for a table cell: metrics to 4 significant digits, specs compactly."""
    if isinstance(value, _Absent):
        return value.label
    if isinstance(value, Stat):
        if value.mean is None:
            return MISSING.label
        mean = format_value(value.mean)
        return mean if value.std is None else f"{mean} ± {format_value(value.std)}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _spec_text(value)


def _spec_text(value: Any) -> str:
    """A spec value on one line: `elu(alpha=1.0)` for a typed mapping, `[300, 100]` for a list."""
    if isinstance(value, dict):
        kind = value.get("type")
        inner = ", ".join(f"{k}={_spec_text(v)}" for k, v in value.items() if k != "type" and v is not None)
        if kind is None:
            return inner
        return f"{kind}({inner})" if inner else str(kind)
    if isinstance(value, list):
        return "[" + ", ".join(_spec_text(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------- renderers


def render_json(comparison: Comparison) -> str:
    """One JSON object: runs, differing_keys, best_run (plus groups under --group-seeds)."""
    out: dict[str, Any] = {
        "metric": comparison.metric,
        "mode": comparison.mode,
        "runs": [_run_json(r, comparison.differing_keys) for r in comparison.runs],
        "differing_keys": comparison.differing_keys,
        "best_run": str(comparison.best_run.path) if comparison.best_run else None,
        "skipped": [str(p) for p in comparison.skipped],
    }
    if comparison.groups is not None:
        out["groups"] = [_group_json(g, comparison) for g in comparison.groups]
    return json.dumps(_finite(out), indent=2, allow_nan=False)


def _run_json(run: Run, keys: list[str]) -> dict[str, Any]:
    return {
        "run": str(run.path),
        "name": run.name,
        "status": run.status,
        "epochs": run.epochs,
        "epochs_planned": run.epochs_planned,
        "best": {"metric": run.best.metric, "value": run.best.value, "epoch": run.best.epoch},
        "final": run.final,
        "wall_seconds": run.wall_seconds,
        "params": {k: _json_value(run.params.get(k, MISSING)) for k in keys} if run.config else None,
        "notes": run.notes,
    }


def _group_json(group: SeedGroup, comparison: Comparison) -> dict[str, Any]:
    finals = list(dict.fromkeys(k for r in group.runs for k in r.final))
    best = group.best
    return {
        "runs": [str(r.path) for r in group.runs],
        "seeds": group.seeds,
        "n": len(group.runs),
        "status": dict(Counter(r.status for r in group.runs)),
        "best": {"metric": comparison.metric, "mean": best.mean, "std": best.std, "n": best.n},
        "final": {m: _stat_json(_stat([r.final.get(m) for r in group.runs])) for m in finals},
        "params": {k: _json_value(group.params.get(k, MISSING)) for k in comparison.differing_keys}
        if group.runs[0].config else None,
    }


def _stat_json(stat: Stat) -> dict[str, Any]:
    return {"mean": stat.mean, "std": stat.std, "n": stat.n}


def _json_value(value: Any) -> Any:
    return None if value is MISSING else value


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: a diverged run's nan loss becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render_csv(comparison: Comparison, diff_only: bool = False) -> str:
    """The table as CSV with full-precision numbers; a seed group's stat gives X and X_std."""
    headers, rows = table_rows(comparison, diff_only)
    stat_cols = {h for h in headers if any(isinstance(r[h], Stat) for r in rows)}
    out_headers = [name for h in headers for name in ((h, f"{h}_std") if h in stat_cols else (h,))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(out_headers)
    for row in rows:
        cells: list[Any] = []
        for h in headers:
            value = row[h]
            if h in stat_cols:
                cells.extend(_csv_stat(value))
            else:
                cells.append(_csv_value(value))
        writer.writerow(cells)
    return buffer.getvalue()


def _csv_stat(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, Stat):
        return (_csv_value(value), "")
    return tuple("" if v is None else repr(v) for v in (value.mean, value.std))


def _csv_value(value: Any) -> Any:
    if isinstance(value, _Absent):
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return value
    return format_value(value)


def render_markdown(comparison: Comparison, diff_only: bool = False) -> str:
    """The table as a GitHub markdown table; the best run's name is bold."""
    headers, rows = table_rows(comparison, diff_only)
    best = comparison.best_run is not None
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(_md_align(h) for h in headers) + "|"]
    for i, row in enumerate(rows):
        cells = [format_value(row[h]).replace("|", "\\|") for h in headers]
        if i == 0 and best:
            cells[headers.index("run")] = f"**{cells[headers.index('run')]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_align(header: str) -> str:
    return " ---: " if _is_numeric_column(header) else " --- "


def _is_numeric_column(header: str) -> bool:
    return header in ("rank", "seeds", "epochs", "best_epoch", "wall_seconds") or header.startswith(
        ("best_", "final_")
    )


def render_table(comparison: Comparison, diff_only: bool = False):
    """The comparison for the terminal: a table of results (best run highlighted), then a
    table of what differs between the runs, keyed by the same rank.

    Two tables because one would not fit: spec values are long and terminals are narrow, and
    squeezing both into one folds every cell. The telling keys that every run shares are listed
    under the tables instead of as columns of one repeated value (csv/markdown keep them).
    """
    from rich.console import Group

    headers, rows = table_rows(comparison, diff_only=True)
    spec_headers = [h for h in headers if "." in h]
    result_headers = [h for h in headers if "." not in h]
    direction = "lower" if comparison.mode == "min" else "higher"
    results = _rich_table(
        rows,
        _terminal_columns(result_headers),
        comparison,
        title=f"{len(rows)} {'seed groups' if comparison.groups else 'runs'} ranked by "
        f"{comparison.metric} ({direction} is better)",
        caption="best epoch counts from 0, as metrics.csv does",
    )
    parts = [results]
    if spec_headers:
        parts.append(_differences(rows, spec_headers, comparison))
    if not diff_only and comparison.context_keys:
        shared = next((r.params for r in comparison.runs if r.config is not None), {})
        from rich.text import Text

        parts.append(Text("same in every run: " + ", ".join(
            f"{k}={format_value(shared.get(k, MISSING))}" for k in comparison.context_keys
        )))
    return Group(*parts)


MAX_DIFF_COLUMNS = 4  # beyond this a table of spec values folds every cell; list them instead


def _differences(rows, spec_headers: list[str], comparison: Comparison):
    """What differs, per run: a table while it stays narrow, else one line per run."""
    from rich.text import Text

    short = _short_names(spec_headers)
    legend = "\n".join(f"{short[h]} = {h}" for h in spec_headers if short[h] != h)
    if len(spec_headers) <= MAX_DIFF_COLUMNS:
        columns = [("rank", ("rank",)), ("run", ("run",))] + [(h, (h,)) for h in spec_headers]
        titles = {h: short[h] for h in spec_headers}
        return _rich_table(rows, columns, comparison, "what differs", legend, titles)
    text = Text("what differs\n", style="italic")
    for i, row in enumerate(rows):
        values = ", ".join(f"{short[h]}={format_value(row[h])}" for h in spec_headers)
        text.append(f"{row['rank']:>3}  {row['run']}: ", style="bold green" if i == 0 else "bold")
        text.append(values + "\n")
    return text


def _rich_table(rows, columns, comparison: Comparison, title: str, caption: str, titles=None):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption or None, header_style="bold", box=box.SIMPLE_HEAD)
    for title_, _ in columns:
        spec_key = "." in title_
        numeric = not (spec_key or title_ in ("run", "status", "notes", "seed"))
        table.add_column(
            (titles or {}).get(title_) or _terminal_header(title_, comparison.metric),
            justify="right" if numeric else "left",
            style="yellow" if title_ == "notes" else None,
            overflow="fold",
        )
    for i, row in enumerate(rows):
        best = i == 0 and comparison.best_run is not None
        cells = [" / ".join(format_value(row[h]) for h in parts) for _, parts in columns]
        # Text, not str: a spec value such as `[bold]` must not be read as rich markup.
        table.add_row(*map(Text, cells), style="bold green" if best else None)
    return table


def _terminal_columns(headers: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Terminal columns as (title, source headers): a final train metric and its validation
    twin share one `train / val` column to save width."""
    columns = []
    for header in headers:
        twin = "final_val_" + header.removeprefix("final_")
        if header.startswith("final_val_") and header.replace("final_val_", "final_", 1) in headers:
            continue
        if header.startswith("final_") and twin in headers:
            columns.append((header + " (train/val)", (header, twin)))
        else:
            columns.append((header, (header,)))
    return columns


def _terminal_header(header: str, metric: str) -> str:
    """Two short lines instead of one long name, so narrow terminals keep the numbers whole."""
    if header == "rank":
        return "#"
    if header == f"best_{metric}":
        return f"best\n{metric}"
    if header in ("best_epoch", "wall_seconds"):
        return header.replace("_", "\n").replace("seconds", "s")
    if header.startswith("final_"):
        name = header.removeprefix("final_")
        return "final " + name.replace(" (train/val)", "\ntrain / val") if "(" in name else "final\n" + name
    if "." in header:  # a dotted spec key breaks at its dots, never inside a word
        return header.replace(".", ".\n")
    return header


def render(comparison: Comparison, fmt: str, diff_only: bool = False) -> str:
    """The comparison as csv, json or markdown text (the terminal table is `render_table`)."""
    if fmt == "json":
        return render_json(comparison) + "\n"
    if fmt == "csv":
        return render_csv(comparison, diff_only)
    if fmt == "markdown":
        return render_markdown(comparison, diff_only)
    raise DnnlabError(f"Received --format {fmt}, expected one of: {', '.join(FORMATS)}.")


def run_labels(comparison: Comparison) -> dict[Path, str]:
    """A short legend label per run naming what differs, e.g. `activation=elu, seed=1`."""
    keys = list(comparison.differing_keys)
    if comparison.groups is not None:
        keys.append("seed")  # grouped runs differ in seed only: the legend must still say which
    short = _short_names(keys)
    labels = {}
    for run in comparison.runs:
        if run.config is None or not keys:
            labels[run.path] = run.path.name
            continue
        values = {**run.params, "seed": run.config.get("seed", MISSING)}
        labels[run.path] = ", ".join(f"{short[k]}={format_value(values.get(k, MISSING))}" for k in keys)
    return labels


def _short_names(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares (`type` says nothing alone,
    so `model.activation.type` reads `activation`)."""
    trimmed = {key: key.removesuffix(".type") for key in keys}
    names = {}
    for key, name in trimmed.items():
        parts = name.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            others = (o for k, o in trimmed.items() if k != key)
            if not any(o == suffix or o.endswith("." + suffix) for o in others):
                break
        names[key] = suffix
    return names
