"""Time dnnlab.inference.mc_dropout.sample against Géron's MC dropout loop, and measure its peak memory.

    .venv/bin/python benchmarks/mc_predict.py            # all cases, updates benchmarks/RESULTS.md
    .venv/bin/python benchmarks/mc_predict.py --quick    # fewer repetitions, prints only

Géron's loop is ``np.stack([model(X, training=True) for _ in range(100)])`` (it also puts batch
norm in training mode; these models have none, so both compute the same thing). Every timing
case runs in this one process, after a warm-up call of each side (tracing excluded), alternating
the two sides so that both meet the same load on a shared machine; peak memory
is the peak RSS of a fresh child process per case, so one case cannot inherit another's peak.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from shared import machine, write_section  # noqa: E402

SECTION = "## mc_predict"
SAMPLES = 100


def geron_model(dropout_everywhere: bool = True):
    """Géron's Fashion-MNIST dropout model; or the same with dropout only before the output."""
    import keras

    keras.utils.set_random_seed(42)
    layers = keras.layers
    stack = [keras.Input((28, 28)), layers.Flatten()]
    for units in (300, 100):
        if dropout_everywhere:
            stack.append(layers.Dropout(0.2))
        stack.append(layers.Dense(units, activation="elu", kernel_initializer="he_normal"))
    stack += [layers.Dropout(0.2), layers.Dense(10, activation="softmax")]
    return keras.Sequential(stack)


def images(n: int):
    import numpy as np

    return np.random.default_rng(0).random((n, 28, 28), dtype=np.float32)


def alternating_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times of ``first`` and ``second``, called in turn so both see the same load."""
    times = ([], [])
    for _ in range(repeats):
        for fn, record in zip((first, second), times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def time_cases(quick: bool) -> list[tuple[str, float, float]]:
    import numpy as np

    from dnnlab.inference import mc_dropout as mc

    def loop(model, x):
        return np.stack([model(x, training=True) for _ in range(SAMPLES)])

    def ours(model, x):
        return mc.sample(model, x, samples=SAMPLES, seed=0)

    full, last_only = geron_model(True), geron_model(False)
    one, many = images(1), images(10_000)
    rows = []
    cases = [
        ("1 instance x 100 samples, Géron's dropout model", full, one, 3 if quick else 9),
        ("10,000 instances x 100 samples, Géron's dropout model", full, many, 1 if quick else 2),
        (
            "10,000 instances x 100 samples, dropout only before the output",
            last_only,
            many,
            1 if quick else 2,
        ),
    ]
    for name, model, x, repeats in cases:
        loop(model, x[:10]), ours(model, x[:10])  # warm-up: trace both paths
        loop_s, our_s = alternating_medians(
            lambda m=model, x=x: loop(m, x), lambda m=model, x=x: ours(m, x), repeats
        )
        rows.append((name, loop_s, our_s))
        print(
            f"{name}: loop {loop_s:.4f} s, dnnlab {our_s:.4f} s, {loop_s / our_s:.1f}x",
            file=sys.stderr,
            flush=True,
        )
    return rows


def peak_rss_child(n: int) -> tuple[float, float]:
    """(peak RSS before predicting, peak RSS after) in MiB of a fresh process predicting n instances."""
    output = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n)], check=True, capture_output=True, text=True
    ).stdout
    before, peak = output.split()[-2:]
    return float(before), float(peak)


def peak_rss_mib() -> float:
    """This process's peak resident set size. VmHWM, not ru_maxrss: on Linux a child's
    ru_maxrss starts from its parent's RSS at fork, which would hide the child's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(n: int) -> None:
    from dnnlab.inference import mc_dropout as mc

    model, x = geron_model(True), images(n)
    mc.sample(model, x[:10], samples=SAMPLES, seed=0)  # tracing happens at any size; count it out
    before = peak_rss_mib()
    mc.sample(model, x, samples=SAMPLES, seed=0)
    print(before, peak_rss_mib())


def versions() -> str:
    import keras
    import tensorflow as tf

    return f"TensorFlow {tf.__version__}, Keras {keras.__version__}"


def results_section(rows, memory) -> str:
    lines = [
        SECTION,
        "",
        "`benchmarks/mc_predict.py`: `dnnlab.inference.mc_dropout.sample(model, x, samples=100)`",
        "against Géron's loop",
        "`np.stack([model(X, training=True) for _ in range(100)])`, both warmed up (graph tracing",
        "excluded), in one process; each case alternates loop and dnnlab calls so both meet the same load,",
        "and reports medians (9 pairs for one instance, 2 pairs for 10,000 instances).",
        f"Machine: {machine()}, {versions()}.",
        "The machine is shared with other work, so figures vary by tens of percent.",
        "",
        "| case | Géron's loop (s) | dnnlab (s) | speedup |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {loop_s:.4f} | {our_s:.4f} | {loop_s / our_s:.1f}x |" for name, loop_s, our_s in rows
    ]
    if memory:
        (before_small, peak_small), (before_large, peak_large) = memory[10_000], memory[100_000]
        input_growth = 90_000 * 28 * 28 * 4 / 2**20
        lines += [
            "",
            "Peak memory (peak RSS, /proc VmHWM, of a fresh process per case, Géron's dropout model,",
            "100 samples; 'before' is the peak after building the model and the input and one small",
            "warm-up prediction, so it includes the input):",
            "",
            "| instances | RSS before predict (MiB) | peak RSS (MiB) | peak - before (MiB) |",
            "| ---: | ---: | ---: | ---: |",
            f"| 10,000 | {before_small:.0f} | {peak_small:.0f} | {peak_small - before_small:.0f} |",
            f"| 100,000 | {before_large:.0f} | {peak_large:.0f} | {peak_large - before_large:.0f} |",
            "",
            f"The 90,000 extra instances are {input_growth:.0f} MiB of input; the 100,000 peak is "
            f"{peak_large - peak_small:.0f} MiB above the 10,000 peak. The result itself "
            "(mean, std: 10 float32;",
            "predicted: int64; entropy, mutual information: float32) grows by "
            f"{90_000 * 96 / 2**20:.0f} MiB; the working",
            "set of the prediction (peak - before) does not grow with the number of instances.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions; print, do not update RESULTS.md"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    rows = time_cases(args.quick)
    memory = None if args.no_memory else {n: peak_rss_child(n) for n in (10_000, 100_000)}
    section = results_section(rows, memory)
    print(section)
    if not args.quick:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
