"""The named sets: Keras's downloadable ones and those that ship inside scikit-learn."""

from __future__ import annotations

from dnnlab import runtime
from dnnlab.data import bundled_sets, keras_datasets
from dnnlab.data.source import CLASSIFICATION, REGRESSION, RawArrays, SourceFacts
from dnnlab.errors import DataError

# One example's shape and the number of classes (None: regression) of every named set.
NAMED_SETS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "mnist": ((28, 28), 10),
    "fashion_mnist": ((28, 28), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "digits": ((64,), 10),
    "iris": ((4,), 3),
    "wine": ((13,), 3),
    "breast_cancer": ((30,), 2),
    "diabetes": ((10,), None),
}


# --- named sets and synthetic data ---------------------------------------------------------


def describe_named(name: str, task: str | None) -> SourceFacts:
    shape, known_classes = NAMED_SETS[name]
    inferred = CLASSIFICATION if known_classes else REGRESSION
    if task == CLASSIFICATION and inferred == REGRESSION:
        raise DataError(f"data.task: {name} is a regression set; use task: regression or omit it")
    return SourceFacts(shape, inferred, name, known_classes)


def load_keras(name: str, seed: int, task: str) -> RawArrays:
    return RawArrays(*keras_datasets.load(name))


def load_sklearn(name: str, seed: int, task: str) -> RawArrays:
    arrays = bundled_sets.load(name)
    if arrays is None:
        with runtime.optional_imports_skipped(runtime.OPTIONAL_FOR_SKLEARN):
            import sklearn.datasets

        arrays = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    return RawArrays(*arrays, None, None)
