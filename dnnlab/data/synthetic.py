"""Generated, seeded data for benchmarks and tests."""

from __future__ import annotations

import numpy as np

from dnnlab.data.source import CLASSIFICATION, RawArrays, SourceFacts
from dnnlab.spec.data import SyntheticSource


def describe_synthetic(source: SyntheticSource, task: str | None) -> SourceFacts:
    return SourceFacts(tuple(source.shape), source.task, "synthetic", source.classes)


def load_synthetic(source: SyntheticSource, seed: int, task: str) -> RawArrays:
    """Seeded, learnable data: class prototypes plus noise, or a smooth random function.

    Prototypes are scaled so that neighbouring classes sit a few noise widths apart whatever
    the shape, so a small model beats chance clearly without the task being trivial.
    """
    rng = np.random.default_rng(seed)
    n = source.train + source.test
    features = int(np.prod(source.shape))
    if task == CLASSIFICATION:
        prototypes = rng.standard_normal((source.classes, features), dtype=np.float32)
        prototypes *= np.float32(3.0 / np.sqrt(features))
        y = rng.integers(0, source.classes, size=n).astype(np.int32)
        x = rng.standard_normal((n, features), dtype=np.float32)
        x += prototypes[y]
    else:
        x = rng.standard_normal((n, features), dtype=np.float32)
        w1, w2 = rng.standard_normal((2, features), dtype=np.float32) / np.float32(np.sqrt(features))
        y = np.sin(2 * (x @ w1)) + 0.5 * (x @ w2) + 0.05 * rng.standard_normal(n, dtype=np.float32)
        y = y.astype(np.float32)
    x = x.reshape(n, *source.shape)
    return RawArrays(x[: source.train], y[: source.train], x[source.train :], y[source.train :])
