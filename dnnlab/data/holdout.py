"""The seeded test hold-out: scikit-learn's `train_test_split`, without importing scikit-learn.

Importing scikit-learn (and the SciPy it pulls in) took about 0.8 s of the quick start's 7 s, to
draw one split. These functions draw the very rows `train_test_split(x, y, test_size=fraction,
random_state=seed, stratify=y or None)` draws (scikit-learn 1.3 to 1.9; tests/test_holdout.py
compares them on many cases), so runs made before keep their splits, and a run's split no longer
changes when scikit-learn does. The algorithm is scikit-learn's (BSD-3-Clause): `ShuffleSplit`,
and `StratifiedShuffleSplit` with its `_approximate_mode`.
"""

from __future__ import annotations

import math

import numpy as np


class SplitError(ValueError):
    """Where `train_test_split` raises: a split with no rows, or too few rows of a class."""


def split_indices(y: np.ndarray, fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training and test row indices, in `train_test_split`'s order, for a test `fraction` in (0, 1)."""
    n = len(y)
    n_test = math.ceil(fraction * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise SplitError(f"{fraction} of {n} rows leaves an empty split")
    rng = np.random.RandomState(seed)
    if not stratify:
        order = rng.permutation(n)
        return order[n_test:], order[:n_test]
    return _stratified(_class_keys(y), n_train, n_test, rng)


def _class_keys(y: np.ndarray) -> np.ndarray:
    """What the classes are told apart by: the labels, or each row's text for 2-D labels."""
    y = np.asarray(y)
    if y.ndim == 2:
        return np.array([" ".join(row.astype("str")) for row in y])
    return y


def _stratified(
    y: np.ndarray, n_train: int, n_test: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise SplitError("a class has a single row")
    if n_train < len(classes) or n_test < len(classes):
        raise SplitError(f"{len(classes)} classes do not fit in {n_train} training and {n_test} test rows")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        rows = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(rows[: n_i[i]])
        test.extend(rows[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows per class, proportional to `class_counts` and adding up to `n_draws`: the largest
    remainders get the rows left over, ties broken at random."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
