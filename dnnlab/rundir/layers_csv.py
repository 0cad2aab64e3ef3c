"""layers.csv: per-layer statistics a run records with `training.diagnostics`; its columns,
writing and the one reader (for `diagnose RUN_DIR` and `report`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


def read_layers_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = []
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key in ("epoch", "step", "depth", "units"):
                    row[key] = int(value)
                elif key in ("layer", "activation"):
                    row[key] = value
                else:
                    row[key] = float(value) if value not in ("", None) else None
            rows.append(row)
        return rows


def read_layers_csv(path: Path) -> list[Measurement]:
    """The measurements of a layers.csv, in the order taken (rows grouped by step)."""
    measurements: dict[int, Measurement] = {}
    for row in read_layers_rows(path):
        m = measurements.setdefault(row["step"], Measurement(row["epoch"], row["step"], []))
        m.rows.append({k: v for k, v in row.items() if k not in ("epoch", "step")})
    for m in measurements.values():
        m.rows.sort(key=lambda r: r["depth"])
    return list(measurements.values())
