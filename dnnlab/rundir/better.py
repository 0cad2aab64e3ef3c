"""The one rule for "better": which way a metric improves, and whether a value beats the
best so far.
"""

from __future__ import annotations

LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "mape", "msle", "crossentropy", "hinge")


def metric_mode(metric: str) -> str:
    """'min' for losses and errors (mse, mae, ...), 'max' for accuracy-like metrics."""
    name = metric.lower().removeprefix("val_")
    return "min" if any(word in name for word in LOWER_IS_BETTER) else "max"


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` improves on `best` by more than `min_delta` (Keras's rule: strictly, so
    a tie keeps the earlier epoch). No best yet: any value is better.

    The one rule for "improved" in dnnlab: early stopping, plateau scheduling, the best
    checkpoint and compare's ranking all decide through it.
    """
    if best is None:
        return True
    if mode == "min":
        return value + abs(min_delta) < best
    if mode == "max":
        return value - abs(min_delta) > best
    raise ValueError(f"mode must be 'min' or 'max'; received {mode!r}")
