"""What every data source shares: the facts it tells about itself, its raw arrays, the task
and the label checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnnlab.errors import DataError

CLASSIFICATION = "classification"


REGRESSION = "regression"


AUTOENCODER = "autoencoder"  # the target is the input: labels are not read


UNLABELED = "unlabeled"  # what a source without labels (csv target: null, npz of x only) tells


def no_labels(x: np.ndarray) -> np.ndarray:
    """Placeholder labels of an unlabelled source's rows, for the splits; nothing trains on them."""
    return np.zeros(len(x), dtype=np.int32)


# --- describe ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFacts:
    """What a source tells about itself before `task` and `classes` are applied."""

    shape: tuple[int, ...]
    task: str  # inferred from the source
    name: str
    num_classes: int | None = None  # known without reading labels (named and synthetic sets)
    labels: np.ndarray | None = None  # the labels present, for file sources
    label_names: list[str] | None = None  # text labels of a csv target, index = label
    table: bool = False  # a CSV with text columns: read as a table (table_source), not as numbers


def infer_task(labels: np.ndarray) -> str:
    """Integer-valued labels mean classification, anything else regression."""
    if labels.dtype.kind in "iub":
        return CLASSIFICATION
    integral = (
        labels.dtype.kind == "f"
        and labels.size > 0
        and bool(np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)))
    )
    return CLASSIFICATION if integral else REGRESSION


def check_class_labels(labels: np.ndarray, name: str) -> None:
    if labels.size and (np.any(labels < 0) or np.any(labels != np.round(labels))):
        bad = labels[(labels < 0) | (labels != np.round(labels))][0]
        raise DataError(
            f"data.task: classification needs labels 0..k-1, but {name} has the label {bad}; "
            "set task: regression for a numeric target"
        )


def check_two_classes(labels: np.ndarray, name: str) -> None:
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"data.task: classification needs at least two classes, but every label of {name} is the "
            "same; set task: regression for a numeric target, or use data with two or more classes"
        )


# --- load ----------------------------------------------------------------------------------


@dataclass
class RawArrays:
    """A source's arrays before filters, splits and scaling."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    label_names: list[str] | None = None  # text labels of a csv target, index = label


# --- npz and csv files ---------------------------------------------------------------------


PATH_KEY = "data.dataset.path"  # the spec key that errors about a data file name
