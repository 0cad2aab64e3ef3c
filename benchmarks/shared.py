"""The shared parts of the benchmark scripts: RESULTS.md sections, the machine they ran on, the
Géron's batch-norm model as a dnnlab spec section, and a median timer."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
# Géron's batch-norm model (28x28 -> BN -> 300 elu -> BN -> 100 elu -> BN -> 10 softmax) as the
# `model:` section of a dnnlab spec; benchmarks/peers.py builds the same network in plain Keras.
GERON_BN_MODEL = {
    "hidden": [300, 100],
    "activation": "elu",
    "initializer": "he_normal",
    "input_normalization": "batch_norm",
    "normalization": {"type": "batch_norm", "position": "after"},
}


def median_seconds(call, repeats: int) -> float:
    """The median wall time of `repeats` calls of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """Cores, CPU model, Python, date and load: what a reader needs to weigh the figures."""
    cpuinfo = Path("/proc/cpuinfo")
    found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text()) if cpuinfo.exists() else None
    cpu = found.group(1).strip() if found else platform.processor()
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}, 1-minute load average {os.getloadavg()[0]:.2f} at the start"
    )


def write_section(heading: str, text: str) -> None:
    """Replace the section under `heading` (up to the next `## `) in RESULTS.md, or append it."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(updated.rstrip("\n") + "\n")
