"""Verdicts drawn across measurements, not from one: whether the gradient growth measured at
initialization lasted, and whether a finished run was still learning when it stopped.

Both exist because one measurement misled: a 30-layer batch-norm stack's lower layers get some
300x the output layer's gradient at initialization, yet after its first epoch the growth was gone
and what held the run back was that it was still learning at its last epoch (configs/science/
deep_batch_norm_exploding.yaml). Every number a message prints is read from the run or the
measurements. TensorFlow-free.
"""

from __future__ import annotations

import math
from typing import Any

from dnnlab.rundir.layers_csv import Measurement

LARGE_UPDATE = 0.5  # a kernel that moved by half its norm since the last measurement was replaced, not tuned


STILL_FALLING = 0.02  # the training loss fell by more than 2% over the last quarter of the epochs


MIN_EPOCHS = 4  # fewer epochs: too short a history to say it still learns


# How Keras computes the two accuracies of a batch-norm network: a gap between them is where a
# mismatch of batch statistics and moving statistics would show.
BATCH_NORM_MODES = (
    " (training mode: batch norm on each batch's statistics)",
    " (inference mode: batch norm's moving statistics)",
)


def _g(value: float) -> str:
    return f"{value:.2g}"


def growth(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """The first and the last (output) layer's gradient norm, when both are finite and positive."""
    if len(rows) < 2:
        return None
    first, last = rows[0]["gradient_norm"], rows[-1]["gradient_norm"]
    if not all(isinstance(g, float | int) and math.isfinite(g) and g > 0 for g in (first, last)):
        return None
    return first, last


def exploding_subsided(measurements: list[Measurement], exploding: list[bool]) -> list[dict[str, Any]]:
    """The verdict `exploding_gradients_subsided` when the gradient growth measured at
    initialization is gone at a later measurement and stays gone at the last (`exploding`: whether
    each measurement gets an exploding_gradients verdict): the ratios measured, and the kernels
    that moved by more than half their norm over the first interval."""
    if len(measurements) < 2 or not exploding[0] or exploding[-1]:
        return []
    gone = next(i for i in range(1, len(measurements)) if not exploding[i])
    start, later, end = measurements[0], measurements[gone], measurements[-1]
    ratios = [growth(m.rows) for m in (start, later, end)]
    if any(r is None for r in ratios):
        return []
    names = [r["layer"] for r in start.rows]
    (s_first, s_last), (l_first, l_last), (e_first, e_last) = ratios
    parts = [
        f"the gradient growth measured at initialization ({names[0]} {_g(s_first)} against "
        f"{names[-1]} {_g(s_last)}, {s_first / s_last:.0f}x) was gone after {later.step} steps (the first "
        f"measurement without it): {names[0]} {_g(l_first)} against {_g(l_last)} ({l_first / l_last:.1f}x)"
    ]
    if end is not later:
        parts.append(f"{end.label}: {_g(e_first)} against {_g(e_last)} ({e_first / e_last:.1f}x)")
    interval = measurements[1]
    moved = [
        (row["layer"], row["update_ratio"], start_row["weight_norm"], row["weight_norm"])
        for start_row, row in zip(start.rows, interval.rows)
        if isinstance(row.get("update_ratio"), float | int) and row["update_ratio"] > LARGE_UPDATE
    ]
    if moved:
        shown = ", ".join(f"{n} {u:.2g} (weight norm {_g(a)} to {_g(b)})" for n, u, a, b in moved[:3])
        more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
        parts.append(
            f"over the first {interval.step} steps {len(moved)} kernels moved by more than "
            f"{LARGE_UPDATE:g} of their norm (update ratio): {shown}{more}"
        )
    return [
        {
            "kind": "exploding_gradients_subsided",
            "layers": [n for n, *_ in moved] or [names[0]],
            "message": "; ".join(parts) + ". The remedies of the verdict at initialization target that "
            "growth: test them (--try-remedies) before applying them",
        }
    ]


def still_learning(history: dict[str, list[float]], batch_norm: bool) -> list[dict[str, Any]]:
    """The verdict `still_learning` for a finished run whose training loss fell by more than 2% (more
    than a converged run's noise) over its last quarter of epochs while its best val_loss came in
    that quarter: it stopped before it converged, so its numbers say how far it got."""
    loss = [v for v in history.get("loss") or [] if isinstance(v, float | int)]
    val = [v for v in history.get("val_loss") or [] if isinstance(v, float | int)]
    if len(loss) < MIN_EPOCHS or not all(math.isfinite(v) for v in loss) or loss[0] <= 0:
        return []
    back = max(1, len(loss) // 4)
    before, after = loss[-1 - back], loss[-1]
    if not before > 0 or (before - after) / before <= STILL_FALLING:
        return []
    finite_val = [v for v in val if math.isfinite(v)]
    if len(val) != len(loss) or not finite_val or val.index(min(finite_val)) < len(val) - back:
        return []
    epochs = len(loss)
    evidence = (
        f"the training loss fell from {before:.3g} at epoch {epochs - back} to {after:.3g} at epoch "
        f"{epochs} ({(after - before) / before:+.0%}) and the best val_loss ({min(finite_val):.3g}) came at "
        f"epoch {val.index(min(finite_val)) + 1}"
    )
    accuracy = _last(history, "accuracy"), _last(history, "val_accuracy")
    if all(a is not None for a in accuracy):
        train_mode, inference = BATCH_NORM_MODES if batch_norm else ("", "")
        evidence += (
            f"; at the last epoch accuracy {accuracy[0]:.3g}{train_mode}, "
            f"val_accuracy {accuracy[1]:.3g}{inference}"
        )
    return [
        {
            "kind": "still_learning",
            "layers": [],
            "message": f"still learning when training stopped: {evidence}. The run's numbers say how far it "
            f"got in {epochs} epochs, not where it would end: test more epochs (--try-remedies) before "
            "reading it as a failure",
        }
    ]


def _last(history: dict[str, list[float]], key: str) -> float | None:
    values = history.get(key) or []
    value = values[-1] if values else None
    return value if isinstance(value, float | int) and math.isfinite(value) else None
