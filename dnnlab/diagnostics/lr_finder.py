"""`dnnlab lr-find`: the learning-rate range test that picks 1cycle's maximum rate.

Smith's range test, as Géron describes it for 1cycle: train a throwaway copy of the spec's
model (its layers, optimizer type and settings, loss, data and batch size) while the learning
rate grows exponentially, one step at a time, from ``min_lr`` to ``max_lr``. The loss first
falls, then flattens, then explodes; the test stops at the explosion, which is its expected end.

- The rate of step i is ``min_lr * (max_lr / min_lr) ** (i / (steps - 1))``, set on the
  optimizer's learning-rate variable before each ``train_on_batch`` (one step per call, so the
  rate changes on every step exactly). The spec's schedule is not used.
- The test stops after the first step whose running loss exceeds 4x the lowest so far (fastai's
  rule), or whose loss is not finite (that step is not recorded), or at ``max_lr``. The running
  loss is an exponential moving average of the batch losses (``beta = 0.98``, bias-corrected as
  Adam corrects its moments): it only looks back, as a stop rule must, and so it lags: on the
  quick start it made half of its fall at about 7x the rate where the batch losses did.
- The reported curve (``losses``) is therefore smoothed afterwards, without lag: the mean of the
  batch losses in a centred window of ``2 * (steps // 30) + 1`` steps (narrower near the ends, so
  it stays centred), about half a decade of rates at the defaults.
- The suggestion for 1cycle's ``max_lr`` follows Smith (2018): the largest rate at which the loss
  still falls clearly. On the centred curve, the slope at each step is taken across the same
  window against log10(rate); the suggestion is the largest rate before the minimum whose slope
  is still at least half the steepest one (``FALLING_FRACTION``). Past it the loss flattens into
  its minimum, where training is on the edge of instability; 1cycle's rising phase then passes
  through the steep part, so the peak goes at its end. The rate of the steepest descent (the
  older, more cautious choice) and the minimum / 10 (fastai's rule of thumb) are reported beside it.
- Only steps after the first 10 count for the slopes (fastai skips the same number).

Nothing is written but the optional plot: no run directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import runtime
from dnnlab.data import datasets
from dnnlab.data.checked_spec import CheckedSpec
from dnnlab.errors import DnnlabError
from dnnlab.files.figures import check_plot_path, pyplot, write_png

BETA = 0.98  # smoothing of the batch losses
EXPLOSION_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
DEFAULT_MIN_LR, DEFAULT_MAX_LR, DEFAULT_STEPS = 1e-7, 10.0, 300
MIN_STEPS = 10
# The first smoothed values average only a few batches and jump about; the steepest descent is
# looked for after them (fastai skips the same number).
SKIP_START = 10
SLOPE_WINDOW_DIVISOR = 30  # smoothing and slopes use a centred window of 2 * (steps // 30) + 1 steps
FALLING_FRACTION = 0.5  # the suggestion: the largest rate whose slope is still this share of the steepest


@dataclass(frozen=True)
class LRFindResult:
    """One range test: the rate and smoothed loss of every recorded step, and the suggestions.

    ``stop`` says why the test ended: "exploded" (smoothed loss above 4x its minimum),
    "non_finite" (a loss was NaN or infinite) or "max_lr" (every step ran).
    """

    learning_rates: list[float]
    losses: list[float]  # smoothed by a centred window, one per rate
    raw_losses: list[float]
    running_losses: list[float]  # the bias-corrected moving average the stop rule watches
    suggestion: float | None  # the largest rate at which the smoothed loss still falls clearly
    min_loss_rate: float | None
    steepest_rate: float | None  # where the smoothed loss falls fastest
    stop: str
    planned_steps: int
    batch_size: int
    optimizer: str
    notes: list[str] = field(default_factory=list)

    @property
    def min_loss_rate_over_10(self) -> float | None:
        return None if self.min_loss_rate is None else self.min_loss_rate / 10

    @property
    def override(self) -> str | None:
        """The `-o` option that trains with 1cycle at the suggested maximum rate."""
        if self.suggestion is None:
            return None
        return f"-o training.schedule='{{type: one_cycle, max_lr: {self.suggestion:.3g}}}'"

    def to_json(self) -> dict[str, Any]:
        return {
            "learning_rates": self.learning_rates,
            "losses": self.losses,
            "suggestion": self.suggestion,
            "method": (
                "the largest rate before the minimum at which the smoothed loss still falls at least "
                f"{FALLING_FRACTION:g}x as fast (per decade of rate) as at its steepest (Smith: the largest "
                "rate at which the loss still falls clearly)"
            ),
            "smoothing": (
                f"mean of the batch losses in a centred window of 2 * (steps // {SLOPE_WINDOW_DIVISOR}) + 1 "
                "steps, narrower near the ends: no lag"
            ),
            "steepest_rate": self.steepest_rate,
            "min_loss_rate": self.min_loss_rate,
            "min_loss_rate_over_10": self.min_loss_rate_over_10,
            "raw_losses": self.raw_losses,
            "running_losses": self.running_losses,
            "steps": len(self.learning_rates),
            "planned_steps": self.planned_steps,
            "stop": self.stop,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "override": self.override,
            "notes": self.notes,
        }


def rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """The exponentially growing rates, from ``min_lr`` to ``max_lr`` in ``steps`` steps."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))


def check_options(min_lr: float, max_lr: float, steps: int) -> None:
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise DnnlabError(f"--min must be a positive rate; received {min_lr:g}")
    if not (math.isfinite(max_lr) and max_lr > min_lr):
        raise DnnlabError(f"--max must be a rate above --min ({min_lr:g}); received {max_lr:g}")
    if steps < MIN_STEPS:
        raise DnnlabError(f"--steps must be at least {MIN_STEPS} to show a curve; received {steps}")


def lr_find(
    checked: CheckedSpec,
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = DEFAULT_MAX_LR,
    steps: int = DEFAULT_STEPS,
    plot: Path | None = None,
) -> LRFindResult:
    """The range test on a fresh copy of the spec's model; with ``plot``, the curve as a PNG."""
    check_options(min_lr, max_lr, steps)
    if plot is not None:
        check_plot_path(plot)
    spec = checked.spec
    runtime.seed_everything(spec.seed, spec.training.deterministic)
    import keras

    from dnnlab.model.build import build_model
    from dnnlab.model.optimizers import make_optimizer
    from dnnlab.spec.training import NoSchedule

    dataset = datasets.load(spec.data)
    training = spec.training
    notes = []
    if spec.model.transfer is not None:
        notes.append("model.transfer is ignored: the test trains the spec's layers from scratch")
    model = build_model(spec, checked.info.input_shape)
    optimizer = make_optimizer(training.optimizer, NoSchedule(type="none"), 1, 1)
    model.compile(optimizer=optimizer, loss=training.loss, steps_per_execution=1, jit_compile=False)
    try:
        result = range_test(
            model,
            dataset.x_train,
            dataset.y_train,
            training.batch_size,
            rates(min_lr, max_lr, steps),
            spec.seed,
        )
    finally:
        keras.backend.clear_session()
    result = LRFindResult(
        **result,
        planned_steps=steps,
        batch_size=training.batch_size,
        optimizer=training.optimizer.type,
        notes=notes,
    )
    if plot is not None:
        plot_lr_find(result, plot)
    return result


def range_test(model, x: np.ndarray, y: np.ndarray, batch_size: int, learning_rates, seed: int) -> dict:
    """Train a compiled ``model`` one batch per rate of ``learning_rates`` until the loss explodes.

    Batches follow a permutation of the rows drawn from (seed, pass over the data), as many
    passes as the steps need. Returns the fields of LRFindResult that the test measures.
    """
    batches = _batches(len(x), batch_size, seed)
    recorded_rates, smoothed, raw = [], [], []
    average, best, stop = 0.0, math.inf, "max_lr"
    for step, rate in enumerate(learning_rates):
        model.optimizer.learning_rate.assign(float(rate))
        rows = next(batches)
        loss = float(model.train_on_batch(x[rows], y[rows], return_dict=True)["loss"])
        if not math.isfinite(loss):
            stop = "non_finite"
            break
        average = BETA * average + (1 - BETA) * loss
        value = average / (1 - BETA ** (step + 1))
        if not math.isfinite(value):
            stop = "non_finite"
            break
        recorded_rates.append(float(rate))
        smoothed.append(value)
        raw.append(loss)
        best = min(best, value)
        if value > EXPLOSION_FACTOR * best:
            stop = "exploded"
            break
    half = max(1, len(learning_rates) // SLOPE_WINDOW_DIVISOR)
    curve = centred(raw, half)
    suggestion, min_loss_rate, steepest = suggest(recorded_rates, curve, half)
    return {
        "learning_rates": recorded_rates,
        "losses": curve,
        "raw_losses": raw,
        "running_losses": smoothed,
        "suggestion": suggestion,
        "min_loss_rate": min_loss_rate,
        "steepest_rate": steepest,
        "stop": stop,
    }


def centred(values: list[float], half: int) -> list[float]:
    """The mean of `values` over a window of up to `half` steps on each side, as many on each side
    (fewer near the ends): a smoothing that does not shift the curve towards later steps."""
    x = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(x)])
    out = []
    for i in range(len(x)):
        w = min(half, i, len(x) - 1 - i)
        out.append(float((sums[i + w + 1] - sums[i - w]) / (2 * w + 1)))
    return out


def suggest(
    learning_rates: list[float], losses: list[float], half: int | None = None
) -> tuple[float | None, float | None, float | None]:
    """(suggestion, rate of the minimum, rate of the steepest descent) of a smoothed curve.

    The slope at step i is the difference of the loss across steps i - half and i + half over
    that of log10(rate) (half: recorded steps // 30, at least 1). Slopes are looked at from step
    ``SKIP_START`` to the minimum; the suggestion is the last of them (the largest rate) still at
    least ``FALLING_FRACTION`` of the steepest. Where no step has a full window, or the loss never
    falls, there is no descent to find and the first and last values are None.
    """
    if not losses:
        return None, None, None
    lowest = int(np.argmin(losses))
    min_loss_rate = learning_rates[lowest]
    half = half or max(1, len(losses) // SLOPE_WINDOW_DIVISOR)
    steps = np.arange(SKIP_START + half, lowest - half + 1)
    if len(steps) == 0:
        return None, min_loss_rate, None
    loss, log_rate = np.asarray(losses), np.log10(learning_rates)
    slopes = (loss[steps + half] - loss[steps - half]) / (log_rate[steps + half] - log_rate[steps - half])
    steepest = int(np.argmin(slopes))
    if slopes[steepest] >= 0:
        return None, min_loss_rate, None
    falling = np.flatnonzero(slopes <= FALLING_FRACTION * slopes[steepest])
    chosen = int(falling[-1])
    return (
        float(learning_rates[int(steps[chosen])]),
        min_loss_rate,
        float(learning_rates[int(steps[steepest])]),
    )


def _batches(n: int, batch_size: int, seed: int):
    rng = np.random.default_rng([seed, 0x1F])
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


# --- the plot ---------------------------------------------------------------------------------


def plot_lr_find(result: LRFindResult, path: Path) -> Path:
    """Smoothed loss against the rate on a log axis, the suggestion (and minimum / 10) marked."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100, layout="constrained")
    ax.plot(result.learning_rates, result.raw_losses, color="0.75", linewidth=0.8, label="batch loss")
    ax.plot(result.learning_rates, result.losses, color="C0", label="smoothed loss")
    if result.suggestion is not None:
        ax.axvline(
            result.suggestion, color="C3", label=f"suggestion (still falling clearly) {result.suggestion:.3g}"
        )
    if result.min_loss_rate_over_10 is not None:
        ax.axvline(
            result.min_loss_rate_over_10,
            color="C2",
            linestyle="--",
            label=f"minimum / 10: {result.min_loss_rate_over_10:.3g}",
        )
    ax.set_xscale("log")
    if result.losses:
        low, high = min(result.losses), max(result.losses[0], min(result.losses) * EXPLOSION_FACTOR)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low) + 1e-12)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title(
        f"learning-rate range test ({result.optimizer}, batch {result.batch_size}; stop: {result.stop})"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return write_png(fig, path)
