"""layers.csv: per-layer statistics a run records with `training.diagnostics`; its columns,
writing and the one reader (for `diagnose RUN_DIR` and `report`).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab.rundir.reading import RunFileUnreadable, read_run_file

# Columns of layers.csv, in order; the statistics are also the keys of `diagnose --json`'s layers.
STATISTICS = (
    "gradient_norm",
    "weight_norm",
    "update_ratio",
    "activation_mean",
    "activation_std",
    "saturated_fraction",
    "dead_fraction",
)


COLUMNS = ("epoch", "step", "depth", "layer", "activation", "units", *STATISTICS)


SATURATION_LEVEL = 0.05  # saturated_fraction: the share whose derivative is below 5% of its maximum


# --- `dnnlab diagnose` ---------------------------------------------------------------------


@dataclass
class Measurement:
    epoch: int  # 0-based epoch in which it was taken (0 at initialization)
    step: int  # optimizer steps done
    rows: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return "at initialization" if self.step == 0 else f"after {self.step} steps"


# --- layers.csv ----------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):  # the shortest decimal of the float32 TensorFlow computed
        return str(np.float32(value)) if math.isfinite(value) else str(value)
    return value


def layers_csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    return buffer.getvalue()


# How each column is parsed; a statistic's empty cell (not measured) is None.
_INTEGERS = ("epoch", "step", "depth", "units")
_TEXTS = ("layer", "activation")
_REQUIRED = ("epoch", "step", "depth", "layer")


def read_layers_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a layers.csv, typed (none when the file is missing). The file is untrusted
    input: unreadable (a FIFO, too large, not UTF-8) or damaged (a missing column, a short row, a
    cell that is not a number) raises `RunFileUnreadable`, whose reason names the line."""
    try:
        text = read_run_file(path)
    except FileNotFoundError:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise RunFileUnreadable(path, f"no {', '.join(missing)} column in its header")
    known = {i: name for i, name in enumerate(header) if name in COLUMNS}
    rows = []
    for cells in reader:
        if not cells:
            continue
        line = reader.line_num
        if len(cells) != len(header):
            raise RunFileUnreadable(path, f"line {line} has {len(cells)} cells, expected {len(header)}")
        rows.append({name: _parse(name, cells[i], line, path) for i, name in known.items()})
    return rows


def _parse(column: str, cell: str, line: int, path: Path) -> Any:
    if column in _TEXTS:
        return cell
    try:
        if column in _INTEGERS:  # ASCII digits only: int() also takes "٣" and " 3 "
            if not re.fullmatch(r"-?[0-9]{1,18}", cell):
                raise ValueError(cell)
            return int(cell)
        return float(cell) if cell else None
    except ValueError:
        expected = "an integer" if column in _INTEGERS else "a number"
        raise RunFileUnreadable(
            path, f"line {line}: {column} is {cell[:40]!r}, expected {expected}"
        ) from None


def read_layers_csv(path: Path) -> list[Measurement]:
    """The measurements of a layers.csv, in the order taken (rows grouped by step)."""
    measurements: dict[int, Measurement] = {}
    for row in read_layers_rows(path):
        m = measurements.setdefault(row["step"], Measurement(row["epoch"], row["step"], []))
        m.rows.append({k: v for k, v in row.items() if k not in ("epoch", "step")})
    for m in measurements.values():
        m.rows.sort(key=lambda r: r["depth"])
    return list(measurements.values())
