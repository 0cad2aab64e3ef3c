"""Helpers shared by the tests that train real runs (pytest puts this folder on sys.path)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import yaml

from dnnlab.data.checked_spec import check_spec
from dnnlab.training import lifecycle

# The tiny spec most tests train: digits, 8 hidden units, 2 epochs of batches of 64 (seconds).
TINY_SPEC = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "digits", "validation": 0.2},
    "model": {"hidden": [8]},
    "training": {"epochs": 2, "batch_size": 64},
}


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """A fresh copy of TINY_SPEC with `overrides` merged in: a mapping merges into the mapping of
    the same name key by key, at any depth (`training={"epochs": 1}` keeps the batch size); any
    other value replaces."""
    return _merge(copy.deepcopy(TINY_SPEC), overrides)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def write_spec(directory: Path, spec: dict, name: str = "spec.yaml") -> Path:
    """Dump a spec dict as YAML into `directory` (created when missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def start(spec_path: Path, runs_dir: Path, overrides=(), name: str | None = None) -> lifecycle.TrainResult:
    """Train a spec in this process, as `dnnlab train` does."""
    return lifecycle.start(check_spec(spec_path, list(overrides)), runs_dir, name, ["test"])


def train_run(spec_path: Path, runs_dir: Path, overrides=(), name: str | None = None) -> Path:
    """Train a spec to completion and return its run directory."""
    result = start(spec_path, runs_dir, overrides, name)
    assert result.status == "completed", result
    return result.run_dir


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict]) -> list[dict]:
    """metrics.csv (or pretrain.csv) rows without `seconds`, the one column a resumed run may
    change."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


SPECIES = ("setosa", "versicolor", "virginica")


def species_csv(path: Path, rows: int = 300, label_column: str | None = "species") -> Path:
    """A CSV of 4 features and a text class (three well-separated clusters), as a user's data
    with string labels would be; `label_column=None` leaves the labels out (data to predict)."""
    import numpy as np

    rng = np.random.default_rng(7)
    classes = np.arange(rows) % len(SPECIES)
    x = rng.normal(size=(rows, 4)) + 3.0 * classes[:, None] * np.array([1.0, -1.0, 0.5, 0.0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "d"] + ([label_column] if label_column else []))
        for features, cls in zip(x.tolist(), classes, strict=True):
            writer.writerow([f"{v:.4f}" for v in features] + ([SPECIES[cls]] if label_column else []))
    return path


def assert_one_line_error(result, *fragments: str) -> str:
    """A CliRunner result of bad input: exit 2, no traceback, one `error:` line holding each
    fragment; returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]
