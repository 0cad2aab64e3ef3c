"""dnnlab draws scikit-learn's hold-out and reads its bundled sets without importing it: the rows
and arrays must be scikit-learn's own, so runs made before keep their data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from dnnlab.data import bundled_sets, holdout


def sklearn_split(y, fraction, seed, stratify):
    rows = np.arange(len(y))
    try:
        train, test = train_test_split(
            rows, test_size=fraction, random_state=seed, stratify=y if stratify else None
        )
    except ValueError:
        return None
    return train, test


def ours(y, fraction, seed, stratify):
    try:
        return holdout.split_indices(y, fraction, seed, stratify)
    except holdout.SplitError:
        return None


def label_sets():
    """Balanced, skewed, tied and tiny class counts, text labels and 2-D labels."""
    rng = np.random.default_rng(0)
    yield "digits", datasets.load_digits(return_X_y=True)[1]
    yield "balanced", np.repeat(np.arange(4), 25)
    yield "skewed", np.repeat(np.arange(5), [50, 20, 7, 3, 2])
    yield "random", rng.integers(0, 7, 333)
    yield "text", np.array(["cat", "dog", "bird"] * 13 + ["cat"])
    yield "floats", rng.integers(0, 3, 90).astype(np.float32)
    yield "two-d", rng.integers(0, 12, (120, 1))
    yield "one-of-a-class", np.array([0] * 30 + [1] * 30 + [2])
    yield "small", np.array([0, 1, 0, 1, 0])


@pytest.mark.parametrize("name,y", list(label_sets()), ids=[name for name, _ in label_sets()])
@pytest.mark.parametrize("stratify", [True, False])
def test_the_split_is_train_test_splits(name, y, stratify):
    for seed in (0, 1, 42, 2**32 - 1):
        for fraction in (0.01, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.9, 0.99):
            expected = sklearn_split(y, fraction, seed, stratify)
            got = ours(y, fraction, seed, stratify)
            if expected is None:
                assert got is None, (seed, fraction)
            else:
                assert got is not None, (seed, fraction)
                np.testing.assert_array_equal(got[0], expected[0])
                np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("name", sorted(bundled_sets.FILES))
def test_bundled_sets_are_scikit_learns_arrays(name):
    x, y = bundled_sets.load(name)
    x_expected, y_expected = getattr(datasets, f"load_{name}")(return_X_y=True)
    assert x.dtype == x_expected.dtype and y.dtype == y_expected.dtype
    np.testing.assert_array_equal(x, x_expected)
    np.testing.assert_array_equal(y, y_expected)


def test_other_sets_are_left_to_scikit_learn():
    assert bundled_sets.load("diabetes") is None
