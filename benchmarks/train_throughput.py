"""Epoch time of `dnnlab train` against a plain `model.fit` of the same model (issue 3, item 7).

The notes' batch-norm model (Flatten 28x28, BatchNormalization, Dense 300 elu he_normal, BN,
Dense 100 elu he_normal, BN, Dense 10 softmax; Nadam, sparse categorical cross-entropy,
accuracy) on dnnlab's synthetic 28x28 data, 55,000 training rows and no validation, on BOTH
sides: the plain side trains on the very arrays `dnnlab.data.load` returns for the spec.

One run of this script measures both sides, alternating them round by round. Each fit runs in
a fresh child process of this script, because dnnlab's execution settings include TensorFlow's
intra-op thread count, which is fixed per process once TensorFlow starts: a plain fit in the
same process would silently inherit it. Both sides enable op determinism.

- plain: `keras.Sequential` built as the notes do, `model.fit(x, y, batch_size=B, epochs=E,
  shuffle=True, verbose=0)` with TensorFlow's default settings, timed by a callback from
  `on_epoch_begin` to `on_epoch_end`.
- dnnlab: a YAML spec in a temporary folder, `dnnlab.train.start(check_spec(path), ...)`, timed
  from its epoch start to the end of its per-epoch record (checkpoint, metrics.csv, state.json).

Medians over epochs 2..E (the first epoch includes tracing) and over every round.

    python benchmarks/train_throughput.py                       # full run, writes RESULTS.md
    python benchmarks/train_throughput.py --epochs 2 --batch-sizes 256 --train-size 5000 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnnlab import runtime  # noqa: E402

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from shared import RESULTS, machine, write_section  # noqa: E402

from dnnlab import callbacks, data, train  # noqa: E402
from dnnlab.spec import check_spec  # noqa: E402

SECTION = "## train_throughput"
SEED = 42


def spec_dict(batch_size: int, epochs: int, train_size: int) -> dict:
    """The notes' batch-norm model as a dnnlab spec, on synthetic 28x28 data without validation."""
    return {
        "name": f"bench-b{batch_size}",
        "seed": SEED,
        "data": {
            "dataset": {
                "type": "synthetic",
                "shape": [28, 28],
                "classes": 10,
                "train": train_size,
                "test": 0,
            },
            "validation": 0,
        },
        "model": {
            "hidden": [300, 100],
            "activation": "elu",
            "initializer": "he_normal",
            "input_normalization": "batch_norm",
            "normalization": {"type": "batch_norm", "position": "after"},
        },
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": "nadam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "monitor": "loss",
            "deterministic": True,
        },
    }


def notes_model() -> keras.Model:
    """The batch-norm model exactly as the notes write it (with keras.Input for Keras 3)."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(300, activation="elu", kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(100, activation="elu", kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Nadam(), metrics=["accuracy"]
    )
    return model


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds; CPU time is the steadier figure when others load the machine."""
    return time.perf_counter(), time.process_time()


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = clock()

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = clock()
        self.seconds.append(wall - self._start[0])
        self.cpu.append(cpu - self._start[1])


def plain_fit(x, y, batch_size: int, epochs: int) -> EpochTimer:
    keras.utils.set_random_seed(SEED)
    timer = EpochTimer()
    notes_model().fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return timer


@contextlib.contextmanager
def epoch_clock(begins: list[tuple[float, float]], ends: list[tuple[float, float]]):
    """Timestamps at dnnlab's epoch start and after its per-epoch record (checkpoint included)."""
    on_begin, record = callbacks.Recorder.on_epoch_begin, train.Session.record_epoch

    def timed_begin(self, epoch, logs=None):
        begins.append(clock())
        return on_begin(self, epoch, logs)

    def timed_record(self, *args, **kwargs):
        result = record(self, *args, **kwargs)
        ends.append(clock())
        return result

    callbacks.Recorder.on_epoch_begin, train.Session.record_epoch = timed_begin, timed_record
    try:
        yield
    finally:
        callbacks.Recorder.on_epoch_begin, train.Session.record_epoch = on_begin, record


@dataclass
class DnnlabEpochs:
    csv_seconds: list[float]
    full_seconds: list[float]
    full_cpu: list[float]
    execution: dict  # dnnlab's execution plan from state.json


def dnnlab_fit(tmp: Path, batch_size: int, epochs: int, train_size: int) -> DnnlabEpochs:
    spec_path = tmp / f"bench-b{batch_size}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(batch_size, epochs, train_size), sort_keys=False))
    begins: list[tuple[float, float]] = []
    ends: list[tuple[float, float]] = []
    with epoch_clock(begins, ends):
        result = train.start(check_spec(spec_path), tmp / "runs", None, ["bench"])
    if result.status != "completed":
        raise RuntimeError(f"dnnlab run ended {result.status}: {result.run_dir}")
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        csv_seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    spe = json.loads((result.run_dir / "state.json").read_text())["execution"]
    return DnnlabEpochs(
        csv_seconds,
        [e[0] - b[0] for b, e in zip(begins, ends)],
        [e[1] - b[1] for b, e in zip(begins, ends)],
        spe,
    )


@dataclass
class Measured:
    plain: list[float] = field(default_factory=list)  # epochs 2..E of every round
    csv: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    plain_cpu: list[float] = field(default_factory=list)
    full_cpu: list[float] = field(default_factory=list)
    execution: dict = field(default_factory=dict)


def measure(batch_sizes: list[int], epochs: int, train_size: int, rounds: int) -> dict[int, Measured]:
    """Alternate the two sides, each fit in its own child process."""
    results = {b: Measured() for b in batch_sizes}
    for r in range(rounds):
        for b in batch_sizes:
            order = ("plain", "dnnlab") if r % 2 == 0 else ("dnnlab", "plain")
            for side in order:
                child = run_child(side, b, epochs, train_size)
                measured = results[b]
                if side == "plain":
                    measured.plain += child["seconds"][1:]
                    measured.plain_cpu += child["cpu"][1:]
                else:
                    measured.full += child["seconds"][1:]
                    measured.full_cpu += child["cpu"][1:]
                    measured.csv += child["csv_seconds"][1:]
                    measured.execution = child["execution"]
                print(
                    f"round {r + 1} batch {b} {side:6s} " + " ".join(f"{x:.2f}" for x in child["seconds"]),
                    file=sys.stderr,
                    flush=True,
                )
    return results


def run_child(side: str, batch_size: int, epochs: int, train_size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        side,
        "--batch-sizes",
        str(batch_size),
        "--epochs",
        str(epochs),
        "--train-size",
        str(train_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(side: str, batch_size: int, epochs: int, train_size: int) -> dict:
    """One fit in this process; prints its per-epoch times as one JSON line."""
    if side == "plain":
        keras.utils.set_random_seed(SEED)
        tf.config.experimental.enable_op_determinism()
        loaded = data.load(check_spec_from_dict(spec_dict(batch_size, epochs, train_size)).spec.data)
        timer = plain_fit(loaded.x_train, loaded.y_train, batch_size, epochs)
        return {"seconds": timer.seconds, "cpu": timer.cpu}
    with tempfile.TemporaryDirectory() as tmp:
        run = dnnlab_fit(Path(tmp), batch_size, epochs, train_size)
    return {
        "seconds": run.full_seconds,
        "cpu": run.full_cpu,
        "csv_seconds": run.csv_seconds,
        "execution": run.execution,
    }


def check_spec_from_dict(spec: dict):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return check_spec(path)


def table(results: dict[int, Measured]) -> list[str]:
    med = statistics.median
    lines = [
        "| batch | plain fit s/epoch | dnnlab s/epoch (metrics.csv) | dnnlab s/epoch incl. checkpoint "
        "| speedup | plain CPU s/epoch | dnnlab CPU s/epoch | CPU ratio | dnnlab execution |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for b, m in results.items():
        lines.append(
            f"| {b} | {med(m.plain):.2f} | {med(m.csv):.2f} | {med(m.full):.2f} | "
            f"{med(m.plain) / med(m.full):.2f}x | {med(m.plain_cpu):.2f} | {med(m.full_cpu):.2f} | "
            f"{med(m.plain_cpu) / med(m.full_cpu):.2f}x | {describe(m.execution)} |"
        )
    return lines


def describe(execution: dict) -> str:
    threads = f"{execution['intra_op_threads']}/{execution['inter_op_threads']}"
    return (
        f"steps_per_execution {execution['steps_per_execution']}, XLA "
        f"{'on' if execution['jit_compile'] else 'off'}, threads (intra/inter, 0 = all) {threads}"
    )


def report(results: dict[int, Measured], args: argparse.Namespace, command: str) -> str:
    n = len(next(iter(results.values())).plain)
    return "\n".join(
        [
            SECTION,
            "",
            f"`{command}`: the notes' batch-norm model (Flatten 28x28, BN, Dense 300 elu he_normal, BN, "
            "Dense 100 elu he_normal, BN, Dense 10 softmax; Nadam, sparse categorical cross-entropy, "
            f"accuracy) on {args.train_size:,} synthetic 28x28 rows, no validation, the same rows on both "
            "sides, each fit in a fresh child process of one script run (dnnlab's intra-op thread setting is "
            "per process), op determinism on both sides. "
            "Plain: `keras.Sequential` + `model.fit(x, y, batch_size=B, epochs=E, shuffle=True, verbose=0)` "
            "with TensorFlow's defaults, timed from `on_epoch_begin` to `on_epoch_end`. dnnlab: "
            "`dnnlab.train.start` on a YAML spec with its automatic execution settings. `metrics.csv` is the "
            "`seconds` dnnlab records; `incl. checkpoint` runs to the end of the per-epoch `.keras` save, "
            "metrics.csv and state.json writes. "
            f"Medians of epochs 2..{args.epochs} over {args.rounds} rounds ({n} epochs a cell); rounds "
            "alternate which side runs first. Speedup = plain / dnnlab incl. checkpoint (wall time); the CPU "
            "columns are the process's CPU seconds over the same spans, less sensitive to other load. "
            "Target: at least 2x at batch 32, never slower at batch 256.",
            "",
            f"Machine: {machine()}, TensorFlow {tf.__version__}, Keras {keras.__version__}; the machine "
            "is shared, so absolute figures drift by 10-20% between runs.",
            "",
            *table(results),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit; the first is dropped")
    parser.add_argument("--batch-sizes", default="32,256", help="comma-separated, e.g. 32,256")
    parser.add_argument("--train-size", type=int, default=55000)
    parser.add_argument("--rounds", type=int, default=2, help="fits per side and batch size")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS.name} alone")
    parser.add_argument("--child", choices=("plain", "dnnlab"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, int(args.batch_sizes), args.epochs, args.train_size)))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch (tracing) is not counted")
    command = shlex.join(["python", "benchmarks/train_throughput.py", *sys.argv[1:]])
    results = measure(
        [int(b) for b in args.batch_sizes.split(",")], args.epochs, args.train_size, args.rounds
    )
    text = report(results, args, command)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
