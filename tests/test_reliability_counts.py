"""Reliability diagrams show how many instances each bin holds: a bar of 3 predictions and a bar
of 300 look alike otherwise."""

from __future__ import annotations

import numpy as np

from dnnlab.files.figures import pyplot
from dnnlab.inference import calibration


def test_each_filled_bin_is_labelled_with_its_count():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=200)
    figure = calibration.reliability_figure({"a": probabilities, "b": probabilities**0.5}, labels)
    try:
        for ax, probs in zip(figure.axes, (probabilities, probabilities**0.5)):
            table = calibration.reliability(probs, labels)
            shown = [int(text.get_text()) for text in ax.texts]
            assert shown == [int(c) for c in table["count"] if c > 0]
            assert sum(shown) == 200
    finally:
        pyplot().close(figure)
    png = calibration.reliability_png({"a": probabilities}, labels)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
