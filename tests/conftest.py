"""Fixtures shared by the test modules."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# Tests never write into the user's persistent XLA cache (dnnlab.xla_cache): the tests of the
# cache give it a folder of their own, and child processes inherit this.
os.environ["DNNLAB_XLA_CACHE"] = "off"

# Synthetic datasets of Géron's shapes: describing them needs no download and no TensorFlow.
IMAGES_28X28 = {"dataset": {"type": "synthetic", "shape": [28, 28], "classes": 10}}
REGRESSION_8 = {"dataset": {"type": "synthetic", "shape": [8], "task": "regression"}}


@pytest.fixture(autouse=True)
def no_terminal_width(monkeypatch):
    """Output must not depend on the terminal: tests run as a pipe would, without $COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """write_spec(spec, name="spec.yaml") -> Path: a dict is dumped as YAML, a str written as is."""

    def write(spec: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def images_data() -> dict[str, Any]:
    """`data:` for 28x28 images in 10 classes (the Fashion-MNIST shape)."""
    return copy.deepcopy(IMAGES_28X28)


@pytest.fixture
def regression_data() -> dict[str, Any]:
    """`data:` for 8 numeric features and a numeric target (the California housing shape)."""
    return copy.deepcopy(REGRESSION_8)
