"""Temperature scaling and reliability diagrams: the baselines MC dropout is judged against.

MC dropout is often said to calibrate a network; the cheapest rival is temperature scaling
(Guo et al., 2017): divide the deterministic logits by one number T > 0 fitted on the
validation split to minimise its NLL. T > 1 softens overconfident predictions, T < 1 sharpens
underconfident ones; the predicted class never changes. For a softmax output the logits are the
log-probabilities (softmax is shift-invariant, so that is exact up to the probability floor).

A reliability diagram bins the predictions by confidence (15 equal-width bins, those of the ECE)
and plots each bin's accuracy against its mean confidence: a calibrated model lies on the diagonal.

The classification metrics (accuracy, NLL, Brier score, ECE) of every prediction dnnlab scores
live here, TensorFlow-free, so that `mc-predict` and `report` compute the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from dnnlab.errors import DnnlabError, PredictError
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.files.figures import png_bytes, pyplot

ECE_BINS = 15
# The search interval of T: wide enough for any network seen here, narrow enough to stay finite.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# Keeps log(0) finite in the NLL: a probability below this counts as this.
_PROB_FLOOR = 1e-12


def class_probabilities(probabilities) -> np.ndarray:
    """Rows of class probabilities; a one-unit (sigmoid) output p becomes [1 - p, p]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities.reshape(len(probabilities), -1)
    if probabilities.shape[1] == 1:
        return np.concatenate([1.0 - probabilities, probabilities], axis=1)
    return probabilities


def class_labels(y, probabilities: np.ndarray) -> np.ndarray:
    """Integer class labels, one per row of ``probabilities`` (one-hot rows become their index);
    a label count or value that does not fit is a `PredictError`."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == probabilities.shape[1] and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot labels
    labels = y.reshape(-1).astype(int)
    if len(labels) != len(probabilities):
        raise PredictError(
            f"y must have one label per instance: expected {len(probabilities)}, received {len(labels)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= probabilities.shape[1]):
        raise PredictError(
            f"class labels must lie in 0..{probabilities.shape[1] - 1}; "
            f"received {labels.min()}..{labels.max()}"
        )
    return labels


def classification_metrics(probabilities, y, bins: int = ECE_BINS) -> dict[str, float]:
    """accuracy, nll (mean -log p of the true class), brier (mean over instances of the squared
    distance to the one-hot label, summed over classes) and ece (``bins`` equal-width confidence
    bins, weighted by their share of instances)."""
    probabilities = class_probabilities(probabilities)
    labels = class_labels(y, probabilities)
    one_hot = np.zeros_like(probabilities)
    one_hot[np.arange(len(labels)), labels] = 1.0
    return {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "nll": nll(probabilities, labels),
        "brier": float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1))),
        "ece": expected_calibration_error(reliability(probabilities, labels, bins)),
    }


def temperature_scale(probabilities, temperature: float) -> np.ndarray:
    """softmax(log(p) / T), row by row."""
    logits = np.log(np.maximum(class_probabilities(probabilities), _PROB_FLOOR)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def nll(probabilities, labels) -> float:
    """Mean -log p of the true class (a probability below 1e-12 counts as 1e-12)."""
    probabilities = class_probabilities(probabilities)
    labels = class_labels(labels, probabilities)
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], _PROB_FLOOR))))


def fit_temperature(probabilities, labels) -> float:
    """The T in [0.05, 20] that minimises the NLL of ``temperature_scale(probabilities, T)``.

    A bounded 1-D search over log T (scipy's Brent method): the NLL is smooth and, in T, has one
    minimum for the cases that matter, so the search is exact to its tolerance.
    """
    labels = np.asarray(labels).reshape(-1).astype(int)
    if len(labels) == 0:
        raise DnnlabError("temperature scaling needs at least one labelled validation instance")
    best = minimize_scalar(
        lambda log_t: nll(temperature_scale(probabilities, float(np.exp(log_t))), labels),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(best.x))


def reliability(probabilities, labels, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin (b/bins, (b+1)/bins] (a confidence of 0 goes to the first bin): count,
    mean confidence and accuracy (NaN where empty); the ECE is sum(count/n * |accuracy -
    confidence|)."""
    probabilities = class_probabilities(probabilities)
    labels = class_labels(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(labels)), predicted]
    correct = predicted == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    mean_confidence = np.full(bins, np.nan)
    accuracy = np.full(bins, np.nan)
    for b in np.flatnonzero(count):
        members = index == b
        mean_confidence[b] = confidence[members].mean()
        accuracy[b] = correct[members].mean()
    return {"count": count, "confidence": mean_confidence, "accuracy": accuracy}


def expected_calibration_error(table: dict[str, np.ndarray]) -> float:
    """The ECE of a `reliability` table: each filled bin's |accuracy - confidence|, weighted by
    its share of instances."""
    total = table["count"].sum()
    ece = 0.0
    for b in np.flatnonzero(table["count"]):
        ece += table["count"][b] / total * abs(table["accuracy"][b] - table["confidence"][b])
    return float(ece)


def reliability_curves(arrays: dict[str, Any], mc_description: str = "") -> dict[str, np.ndarray]:
    """Method name -> class probabilities, from what `mc-predict --out FILE.npz` holds: the
    deterministic pass and the temperature-scaled one where present, and the MC mean."""
    curves = {}
    if "deterministic" in arrays:
        curves["deterministic"] = np.asarray(arrays["deterministic"])
    curves[f"MC dropout{mc_description}"] = np.asarray(arrays["mean"])
    if "temperature_scaled" in arrays:
        name = f"temperature scaled (T={float(arrays['temperature']):.3g})"
        curves[name] = np.asarray(arrays["temperature_scaled"])
    return curves


def plot_reliability(curves: dict[str, np.ndarray], labels, path: Path, title: str = "") -> Path:
    """Write the reliability diagram of `reliability_png` to `path` (atomically)."""
    atomic_write_bytes(path, reliability_png(curves, labels, title))
    return path


def reliability_png(curves: dict[str, np.ndarray], labels, title: str = "") -> bytes:
    """The figure of `reliability_figure` as PNG bytes."""
    return png_bytes(reliability_figure(curves, labels, title))


def reliability_figure(curves: dict[str, np.ndarray], labels, title: str = ""):
    """One panel per method (name -> class probabilities): bin accuracy as bars against mean
    confidence, each bar labelled at its foot with its count of instances (a bar of 3 says
    little), the diagonal of perfect calibration, and the ECE in the legend."""
    plt = pyplot()

    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.4), dpi=100, squeeze=False)
    for ax, (name, probabilities) in zip(axes[0], curves.items()):
        table = reliability(probabilities, labels)
        filled = table["count"] > 0
        ece = expected_calibration_error(table)
        ax.bar(
            edges[:-1][filled],
            table["accuracy"][filled],
            width=1.0 / ECE_BINS,
            align="edge",
            edgecolor="black",
            linewidth=0.5,
            label=f"accuracy (ECE {ece:.3f})",
        )
        ax.plot(table["confidence"][filled], table["accuracy"][filled], "o", color="C3", markersize=3)
        for b in np.flatnonzero(filled):
            ax.text(
                edges[b] + 0.5 / ECE_BINS,
                0.02,
                str(int(table["count"][b])),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                color="white" if table["accuracy"][b] > 0.12 else "black",
            )
        ax.plot([0, 1], [0, 1], "--", color="0.4", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (bar labels: instances per bin)")
        ax.set_title(name)
        ax.legend(loc="upper left", fontsize="small")
    axes[0][0].set_ylabel("accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
