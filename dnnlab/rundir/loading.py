"""Reading run directories back tolerantly: whatever is missing or damaged in a run becomes a
note on it, never an error. compare, report and tracking read runs through this one reader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnlab.errors import ConfigError
from dnnlab.files import safe_yaml
from dnnlab.rundir.layers_csv import read_layers_rows
from dnnlab.rundir.layout import CONFIG_YAML, METRICS_CSV, RUN_JSON, is_run_dir
from dnnlab.rundir.reading import RunFileUnreadable, parse_json, read_run_file
from dnnlab.rundir.records import BestRecord, RunRecord, int_or_none
from dnnlab.spec.checks import DATA_LOSS

# metrics.csv columns that are bookkeeping, not train or validation metrics.
NOT_METRICS = ("epoch", "lr", "seconds")


# Caps on what one metrics.csv may hold (besides read_run_file's size cap), so a hostile or
# damaged run gets a note instead of a table a million columns wide.
MAX_METRIC_COLUMNS = 256


MAX_EPOCHS = 100_000
EMPTY_METRICS = "empty metrics.csv"
MAX_MESSAGE = 600  # characters of a recorded divergence message shown (a real one is about 300)


_TIMESTAMP_SUFFIX = re.compile(r"-\d{8}-\d{6}(-\d+)?$")


class Absent:
    """A value that is not there, as opposed to a spec value of null."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


TEST_PREFIX = "test_"  # --metric test_accuracy: run.json's test record, never the default ranking


MISSING = Absent("-")  # a key this run's config lacks, or a metric it never recorded


UNKNOWN = Absent("?")  # a spec value of a run whose config.yaml cannot be read


@dataclass
class LoadedRun:
    """What compare knows about one run directory; `notes` says what was damaged or missing."""

    path: Path
    name: str
    status: str
    epochs: int
    epochs_planned: int | None
    wall_seconds: float | None
    config: dict[str, Any] | None
    history: dict[str, list[float]]
    monitored: BestRecord | None  # as run.json records it
    notes: list[str] = field(default_factory=list)
    best: BestRecord | None = None  # of the metric compared, found by best_of
    params: dict[str, Any] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)  # run.json's test {loss, metrics}
    reached: int | None = None  # epochs it took to reach Comparison.reach (counted from 1)

    @property
    def final(self) -> dict[str, float]:
        """The train and validation metrics of the last finished epoch."""
        return {k: v[-1] for k, v in self.history.items() if k not in NOT_METRICS and v}


def find_run_dirs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split the given paths into run directories and skipped paths.

    A folder that is not a run but holds runs (e.g. `runs/`, or a sweep directory) stands for the
    runs inside it, and a sweep directory inside such a folder for its trials.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if is_run_dir(path):
            found.append(path)
            continue
        children = _runs_in(path) if path.is_dir() else []
        if children:
            found.extend(children)
        else:
            skipped.append(path)
    return list(dict.fromkeys(found)), skipped


def _runs_in(folder: Path) -> list[Path]:
    found = []
    for child in sorted(folder.iterdir()):
        if is_run_dir(child):
            found.append(child)
        elif (child / "sweep.json").is_file():
            found.extend(sorted(p for p in child.iterdir() if is_run_dir(p)))
    return found


def load_runs(paths: list[Path]) -> list[LoadedRun]:
    """Load run directories, parsing each distinct section of their config.yaml files once.

    Where some of them log `data_loss` (an l1/l2 penalty is added to their `loss`), a run without
    a penalty gets its `loss` as its `data_loss` too, the same figure by definition, so runs
    regularized and not can be ranked on one metric."""
    sections: dict[str, Any] = {}
    runs = [load_run(p, sections) for p in paths]
    if any(DATA_LOSS in run.history for run in runs):
        for run in runs:
            if run.config is not None and not _has_weight_penalty(run.config):
                for prefix in ("", "val_"):
                    loss = run.history.get(f"{prefix}loss")
                    if loss is not None:
                        run.history.setdefault(f"{prefix}{DATA_LOSS}", loss)
    return runs


def _has_weight_penalty(config: dict[str, Any]) -> bool:
    """Whether the run's config.yaml names an l1/l2 regularizer on the model or any layer."""
    model = config.get("model")
    if not isinstance(model, dict):
        return True  # unknown: leave the run as it is
    layers = model.get("layers")
    layers = layers if isinstance(layers, list) else []
    return bool(model.get("regularizer")) or any(isinstance(x, dict) and x.get("regularizer") for x in layers)


def load_run(path: Path, sections: dict[str, Any] | None = None) -> LoadedRun:
    """Read one run directory; whatever is missing or damaged becomes a note, never an error.

    `sections` memoizes parsed config sections across runs (see `parse_spec`); the configs it
    returns share objects and must not be mutated.
    """
    notes: list[str] = []
    sections = {} if sections is None else sections
    info = RunRecord.from_dict(_read_mapping(path / RUN_JSON, parse_json, notes))
    config = _read_mapping(
        path / CONFIG_YAML, lambda text: parse_spec(text, sections), notes, read=read_yaml_text
    )
    history = read_metrics_columns(path / METRICS_CSV, notes)
    if info.status == "diverged":  # its diverged epoch is never a row of metrics.csv: say what it was
        notes[:] = [note for note in notes if note != EMPTY_METRICS]
        notes.append(divergence_text(info))

    last_epoch = int_or_none(history["epoch"][-1]) if history.get("epoch") else None
    epochs = max(info.epochs_done, 0 if last_epoch is None else last_epoch + 1)
    wall = info.wall_seconds
    if wall is None and history.get("seconds"):
        wall = sum(s for s in history["seconds"] if math.isfinite(s))
    name = info.name or (config or {}).get("name") or _TIMESTAMP_SUFFIX.sub("", path.name)
    return LoadedRun(
        path=path,
        name=str(name),
        status=info.status,
        epochs=epochs,
        epochs_planned=info.epochs_planned,
        wall_seconds=wall,
        config=config,
        history=history,
        monitored=info.best,
        notes=notes,
        test=info.test or {},
    )


def divergence_text(record: RunRecord) -> str:
    """One line on a diverged run: the message run.json records under `divergence` (the epoch,
    the values that went non-finite, what to try), or, from a run that does not record it, the
    epoch it diverged in, the one after its last committed epoch."""
    recorded = record.extra.get("divergence")
    if isinstance(recorded, dict) and isinstance(recorded.get("message"), str) and recorded["message"]:
        text = " ".join(recorded["message"].split())
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
    return f"training diverged in epoch {record.epochs_done + 1} (run.json does not record its values)"


def _read_mapping(
    path: Path, parse: Callable[[str], Any], notes: list[str], read: Callable | None = None
) -> dict[str, Any] | None:
    """The mapping `parse` makes of the file, or None with a note: missing, or unreadable."""
    text = (read or read_text)(path, notes)
    if text is None:
        return None
    try:
        value = parse(text)
    except (ValueError, RecursionError, ConfigError):
        value = None
    if not isinstance(value, dict):
        notes.append(f"{path.name} unreadable")
        return None
    return value


def read_text(path: Path, notes: list[str]) -> str | None:
    """A run file's text, or None with a note: missing, not a regular file, too large, not UTF-8."""
    try:
        return read_run_file(path)
    except FileNotFoundError:
        notes.append(f"missing {path.name}")
    except RunFileUnreadable as exc:
        notes.append(f"{path.name} unreadable: {exc.reason}")
    return None


def read_yaml_text(path: Path, notes: list[str]) -> str | None:
    """A YAML file through dnnlab's capped reader: a FIFO, a device or an oversized file is a
    note, never a hang."""
    if not path.exists():
        notes.append(f"missing {path.name}")
        return None
    try:
        return safe_yaml.read_text(path)
    except ConfigError:
        notes.append(f"{path.name} unreadable")
    return None


def read_layers(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The rows of a layers.csv (none when the run was trained without training.diagnostics),
    or none with a note when it is unreadable or damaged (a short row, a cell not a number)."""
    try:
        return read_layers_rows(path)
    except RunFileUnreadable as exc:
        notes.append(f"{path.name} unreadable: {exc.reason}")
        return []


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
                sections[chunk_text] = safe_yaml.loads(chunk_text)
            except ConfigError:
                sections[chunk_text] = None
        part = sections[chunk_text]
        if isinstance(part, dict):
            config.update(part)
        elif part is not None or chunk_text.strip() and not chunk_text.lstrip().startswith("#"):
            return safe_yaml.loads(text)  # not a section: a marker, an error, ...
    return config or safe_yaml.loads(text)


def read_metrics_columns(path: Path, notes: list[str]) -> dict[str, list[float]]:
    """Parse metrics.csv into columns; a line with missing fields or bad numbers is dropped."""
    text = read_text(path, notes)
    if text is None:
        return {}
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        notes.append(EMPTY_METRICS)
        return {}
    header = [h.strip() for h in lines[0].split(",")]
    if len(header) > MAX_METRIC_COLUMNS or len(lines) - 1 > MAX_EPOCHS:
        notes.append(
            f"metrics.csv not read: {len(header):,} columns and {len(lines) - 1:,} rows, more than the "
            f"{MAX_METRIC_COLUMNS} columns and {MAX_EPOCHS:,} epochs compare reads"
        )
        return {}
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
