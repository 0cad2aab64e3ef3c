"""Epoch time of `dnnlab train` against its peers on the same model.

Géron's batch-norm model (Flatten 28x28, BatchNormalization, Dense 300 elu he_normal, BN,
Dense 100 elu he_normal, BN, Dense 10 softmax; Nadam, sparse categorical cross-entropy,
accuracy) on dnnlab's synthetic 28x28 data, 55,000 training rows and no validation, on every
side: the peers train on the very arrays `dnnlab.data.datasets.load` returns for the spec.

One run of this script measures every side, rotating their order round by round. Each fit runs
in a fresh child process of this script, because dnnlab's execution settings include
TensorFlow's intra-op thread count, which is fixed per process once TensorFlow starts, and the
Keras backend is fixed when Keras is first imported.

- tensorflow: `keras.Sequential` built as Géron does, `model.fit(x, y, batch_size=B, epochs=E,
  shuffle=True, verbose=0)` with TensorFlow's default settings and op determinism, timed by a
  callback from `on_epoch_begin` to `on_epoch_end`.
- jax: the same plain fit with KERAS_BACKEND=jax, no tuning.
- torch: an idiomatic PyTorch loop (benchmarks/peers.py).
- dnnlab: a YAML spec in a temporary folder, `dnnlab.training.lifecycle.start(check_spec(path), ...)`, timed
  from its epoch start to the end of its per-epoch record (checkpoint, metrics.csv, state.json).
- floor: the dense layers' multiply-adds of an epoch (forward and two backward matmuls) at the
  matmul rate TensorFlow reaches here on large matrices, measured in the same run.

With `--models batch_norm,dropout` (the default) Géron's dropout model (784 -> Dropout 0.2 ->
Dense 300 elu -> Dropout -> Dense 100 elu -> Dropout -> Dense 10 softmax) is measured too, and
`--whole-epochs E` (default 10; 0: none) adds whole runs timed from process start to exit, imports
and compiling included: `dnnlab train SPEC -q` with an empty persistent XLA cache, then again
with the cache it wrote, against each peer's plain fit in a fresh process.

JAX and PyTorch are benchmark-only (`pip install -e '.[bench]'`); a missing one is left out and
the other columns are still measured. Medians over epochs 2..E (the first epoch includes
tracing) and over every round.

    python benchmarks/train_throughput.py                       # full run, writes RESULTS.md
    python benchmarks/train_throughput.py --epochs 2 --batch-sizes 256 --train-size 5000 \
        --whole-epochs 2 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
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
import peers  # noqa: E402
from shared import GERON_BN_MODEL, RESULTS, machine, write_section  # noqa: E402

SECTION = "## train_throughput"


# Géron's dropout model (784 -> Dropout 0.2 -> Dense 300 elu -> Dropout -> Dense 100 elu ->
# Dropout -> Dense 10 softmax), as benchmarks/dropout.py and peers.geron_dropout_model build it.
GERON_DROPOUT_MODEL = {
    "hidden": [300, 100],
    "activation": "elu",
    "initializer": "he_normal",
    "dropout": {"type": "dropout", "rate": 0.2, "where": "all"},
}
MODELS = {"batch_norm": (GERON_BN_MODEL, [28, 28]), "dropout": (GERON_DROPOUT_MODEL, [784])}
MODEL_TEXT = {
    "batch_norm": "Géron's batch-norm model (Flatten 28x28, BN, Dense 300 elu he_normal, BN, "
    "Dense 100 elu he_normal, BN, Dense 10 softmax)",
    "dropout": "Géron's dropout model (784 -> Dropout 0.2 -> Dense 300 elu -> Dropout -> Dense 100 "
    "elu -> Dropout -> Dense 10 softmax; Keras's Dropout on the peers, dnnlab's seeded dropout)",
}


def spec_dict(batch_size: int, epochs: int, train_size: int, model: str = "batch_norm") -> dict:
    """One of Géron's models (MODELS) as a dnnlab spec, on synthetic data without validation."""
    section, shape = MODELS[model]
    return {
        "name": f"bench-{model}-b{batch_size}",
        "seed": peers.SEED,
        "data": {
            "dataset": {
                "type": "synthetic",
                "shape": shape,
                "classes": 10,
                "train": train_size,
                "test": 0,
            },
            "validation": 0,
        },
        "model": section,
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


@contextlib.contextmanager
def epoch_clock(begins: list[tuple[float, float]], ends: list[tuple[float, float]]):
    """Timestamps at dnnlab's epoch start and after its per-epoch record (checkpoint included)."""
    from dnnlab.training import session
    from dnnlab.training.callbacks import recorder

    on_begin, record = recorder.Recorder.on_epoch_begin, session.Session.record_epoch

    def timed_begin(self, epoch, logs=None):
        begins.append(peers.clock())
        return on_begin(self, epoch, logs)

    def timed_record(self, *args, **kwargs):
        result = record(self, *args, **kwargs)
        ends.append(peers.clock())
        return result

    recorder.Recorder.on_epoch_begin, session.Session.record_epoch = timed_begin, timed_record
    try:
        yield
    finally:
        recorder.Recorder.on_epoch_begin, session.Session.record_epoch = on_begin, record


def dnnlab_fit(tmp: Path, batch_size: int, epochs: int, train_size: int, model: str) -> dict:
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.training import lifecycle

    spec_path = tmp / f"bench-b{batch_size}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(batch_size, epochs, train_size, model), sort_keys=False))
    begins: list[tuple[float, float]] = []
    ends: list[tuple[float, float]] = []
    with epoch_clock(begins, ends):
        result = lifecycle.start(check_spec(spec_path), tmp / "runs", None, ["bench"])
    if result.status != "completed":
        raise RuntimeError(f"dnnlab run ended {result.status}: {result.run_dir}")
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        csv_seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return {
        "seconds": [e[0] - b[0] for b, e in zip(begins, ends)],
        "cpu": [e[1] - b[1] for b, e in zip(begins, ends)],
        "csv_seconds": csv_seconds,
        "execution": json.loads((result.run_dir / "state.json").read_text())["execution"],
    }


SIDES = ("tensorflow", "jax", "torch", "dnnlab")
OPTIONAL = {"jax": "jax", "torch": "torch"}  # side: the module it needs


@dataclass
class Measured:
    """Epochs 2..E of every round, per side, for one batch size."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    csv: list[float] = field(default_factory=list)
    execution: dict = field(default_factory=dict)
    minimal: float = float("nan")  # peers.minimal_step_seconds at this batch size

    def add(self, side: str, child: dict) -> None:
        self.seconds.setdefault(side, []).extend(child["seconds"][1:])
        self.cpu.setdefault(side, []).extend(child["cpu"][1:])
        if side == "dnnlab":
            self.csv += child["csv_seconds"][1:]
            self.execution = child["execution"]


def available_sides() -> list[str]:
    """Every side whose framework is installed; says how to install the missing ones."""
    missing = [side for side, module in OPTIONAL.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(f"not measured ({', '.join(missing)} not installed): {peers.INSTALL}", file=sys.stderr)
    return [side for side in SIDES if side not in missing]


def measure(
    sides: list[str], cases: list[tuple[str, int]], epochs: int, train_size: int, rounds: int
) -> dict[tuple[str, int], Measured]:
    """Rotate the sides' order round by round, each fit in its own child process."""
    results = {case: Measured() for case in cases}
    for r in range(rounds):
        for model, b in cases:
            shift = r % len(sides)
            for side in sides[shift:] + sides[:shift]:
                child = run_child(side, b, epochs, train_size, model)
                results[(model, b)].add(side, child)
                print(
                    f"round {r + 1} {model} batch {b} {side:10s} "
                    + " ".join(f"{x:.2f}" for x in child["seconds"]),
                    file=sys.stderr,
                    flush=True,
                )
    return results


def whole_runs(
    sides: list[str], cases: list[tuple[str, int]], epochs: int, train_size: int, rounds: int
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Process start to exit of a whole `epochs`-epoch run per side: imports, data, building,
    tracing and compiling included. dnnlab is `dnnlab train SPEC -q`, first with an empty
    persistent XLA cache (cold), then at once again on the cache the first run wrote (warm); the
    peers are this script's child doing one fit. The sides' order rotates round by round."""
    found: dict[tuple[str, int], dict[str, list[float]]] = {case: {} for case in cases}
    for r in range(rounds):
        for model, b in cases:
            with tempfile.TemporaryDirectory() as tmp:
                spec_path = Path(tmp) / "spec.yaml"
                spec_path.write_text(yaml.safe_dump(spec_dict(b, epochs, train_size, model), sort_keys=False))
                shift = r % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    for name in ("dnnlab cold", "dnnlab warm") if side == "dnnlab" else (side,):
                        seconds = whole_run(name, spec_path, Path(tmp), b, epochs, train_size, model)
                        found[(model, b)].setdefault(name, []).append(seconds)
            line = ", ".join(f"{k} {v[-1]:.1f} s" for k, v in found[(model, b)].items())
            print(f"whole run, round {r + 1} {model} batch {b}: {line}", file=sys.stderr, flush=True)
    return found


def whole_run(
    side: str, spec_path: Path, tmp: Path, batch_size: int, epochs: int, train_size: int, model: str
) -> float:
    """Wall seconds of one whole run in a fresh process, from its start to its exit."""
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "jax" if side == "jax" else "tensorflow",
    }
    if side.startswith("dnnlab"):
        env["DNNLAB_XLA_CACHE"] = str(tmp / "xla-cache")
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        command = [
            sys.executable,
            "-m",
            "dnnlab",
            "train",
            str(spec_path),
            "--runs-dir",
            str(tmp / "runs"),
            "-q",
        ]
    else:
        command = [sys.executable, __file__, "--child", side, "--batch-sizes", str(batch_size)]
        command += ["--epochs", str(epochs), "--train-size", str(train_size), "--model", model]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{side} whole run failed:\n{done.stderr[-3000:]}")
    return seconds


def run_child(side: str, batch_size: int, epochs: int, train_size: int, model: str = "batch_norm") -> dict:
    command = [sys.executable, __file__, "--child", side, "--batch-sizes", str(batch_size)]
    command += ["--epochs", str(epochs), "--train-size", str(train_size), "--model", model]
    # dnnlab and the TensorFlow fit need the TensorFlow backend even where the caller set another.
    backend = "jax" if side == "jax" else "tensorflow"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(side: str, batch_size: int, epochs: int, train_size: int, model: str) -> dict:
    """One fit (or the matmul rate) in this process, as one JSON-able dict."""
    if side == "floor":
        return {"gflops": peers.matmul_gflops()}
    if side == "minimal":
        widths = [28 * 28, *GERON_BN_MODEL["hidden"], 10]
        return {"seconds": peers.minimal_step_seconds(widths, batch_size, train_size)}
    if side == "dnnlab":
        with tempfile.TemporaryDirectory() as tmp:
            return dnnlab_fit(Path(tmp), batch_size, epochs, train_size, model)
    x, y = training_arrays(batch_size, epochs, train_size, model)
    if side == "torch":
        return peers.torch_fit(x, y, batch_size, epochs, model)
    return peers.keras_fit(x, y, batch_size, epochs, model)


def training_arrays(batch_size: int, epochs: int, train_size: int, model: str):
    """The rows dnnlab trains on for the benchmark spec (dnnlab.data.datasets imports no framework)."""
    from dnnlab.data import datasets
    from dnnlab.data.checked_spec import check_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec_dict(batch_size, epochs, train_size, model), sort_keys=False))
        loaded = datasets.load(check_spec(path).spec.data)
    return loaded.x_train, loaded.y_train


def floor_seconds(batch_size: int, train_size: int, gflops: float) -> float:
    """Seconds of an epoch's dense matmuls at `gflops`: per row, the forward multiply-adds and the
    two backward products (input and weight gradients), 2 FLOPs each."""
    from dnnlab.spec.models import Spec
    from dnnlab.training.execution import dense_macs_per_step

    spec = Spec.model_validate(spec_dict(batch_size, 1, train_size))
    macs_per_row = dense_macs_per_step(spec, (28, 28)) / batch_size
    return 3 * 2 * macs_per_row * train_size / (gflops * 1e9)


LABELS = {"tensorflow": "TF fit", "jax": "Keras-on-JAX fit", "torch": "PyTorch loop", "dnnlab": "dnnlab"}


def tables(results: dict[tuple[str, int], Measured], gflops: float, train_size: int) -> list[str]:
    """Wall seconds with the targets' ratios, then CPU seconds with dnnlab's execution plan."""
    med = statistics.median
    sides = [side for side in SIDES if side in next(iter(results.values())).seconds]
    peers_ = [side for side in sides if side != "dnnlab"]
    wall = [
        "| model | batch | "
        + " | ".join(f"{LABELS[s]} s/epoch" for s in peers_)
        + " | dnnlab s/epoch (metrics.csv) | dnnlab s/epoch incl. checkpoint | "
        + " | ".join(f"{LABELS[s]} / dnnlab" for s in peers_)
        + " | matmul floor s/epoch | dnnlab / floor | minimal XLA step s/epoch | dnnlab / minimal step |",
        "| --- " + "| ---: " * (3 + 2 * len(peers_) + 4) + "|",
    ]
    cpu = [
        "| model | batch | "
        + " | ".join(f"{LABELS[s]} CPU s/epoch" for s in sides)
        + " | dnnlab execution |",
        "| --- " + "| ---: " * (1 + len(sides)) + "| --- |",
    ]
    for (model, b), m in results.items():
        dnnlab = med(m.seconds["dnnlab"])
        floor = floor_seconds(b, train_size, gflops)
        wall.append(
            f"| {model} | {b} | "
            + " | ".join(f"{med(m.seconds[s]):.2f}" for s in peers_)
            + f" | {med(m.csv):.2f} | {dnnlab:.2f} | "
            + " | ".join(f"{med(m.seconds[s]) / dnnlab:.2f}x" for s in peers_)
            + f" | {floor:.2f} | {dnnlab / floor:.2f}x | {m.minimal:.2f} | {dnnlab / m.minimal:.2f}x |"
        )
        cpu.append(
            f"| {model} | {b} | "
            + " | ".join(f"{med(m.cpu[s]):.2f}" for s in sides)
            + f" | {describe(m.execution)} |"
        )
    return [*wall, "", *cpu]


WHOLE_LABELS = {
    "tensorflow": "TF fit",
    "jax": "Keras-on-JAX fit",
    "torch": "PyTorch loop",
    "dnnlab cold": "dnnlab, empty XLA cache",
    "dnnlab warm": "dnnlab, warm XLA cache",
}


def whole_table(found: dict[tuple[str, int], dict[str, list[float]]]) -> list[str]:
    """Whole runs, process start to exit: medians, and Keras-on-JAX / dnnlab (the 1.2x target)."""
    med = statistics.median
    columns = list(WHOLE_LABELS)
    lines = [
        "| model | batch | "
        + " | ".join(f"{WHOLE_LABELS[c]} s" for c in columns)
        + " | Keras-on-JAX / dnnlab (cold, warm) | TF fit / dnnlab (cold, warm) |",
        "| --- " + "| ---: " * (1 + len(columns) + 2) + "|",
    ]
    for (model, b), sides in found.items():
        cells = [f"{med(sides[c]):.1f}" if c in sides else "not installed" for c in columns]
        ratios = []
        for peer in ("jax", "tensorflow"):
            if peer in sides and "dnnlab cold" in sides:
                cold, warm = med(sides["dnnlab cold"]), med(sides["dnnlab warm"])
                ratios.append(f"{med(sides[peer]) / cold:.2f}x, {med(sides[peer]) / warm:.2f}x")
            else:
                ratios.append("not installed" if peer not in sides else "-")
        lines.append(f"| {model} | {b} | " + " | ".join(cells + ratios) + " |")
    return lines


def describe(execution: dict) -> str:
    threads = f"{execution['intra_op_threads']}/{execution['inter_op_threads']}"
    return (
        f"steps_per_execution {execution['steps_per_execution']}, XLA "
        f"{'on' if execution['jit_compile'] else 'off'}, threads (intra/inter, 0 = all) {threads}"
    )


def versions(sides: list[str]) -> str:
    import keras
    import tensorflow as tf

    found = [f"TensorFlow {tf.__version__}", f"Keras {keras.__version__}"]
    if "jax" in sides:
        import jax

        found.append(f"JAX {jax.__version__}")
    if "torch" in sides:
        import torch

        found.append(f"PyTorch {torch.__version__}")
    return ", ".join(found)


def results_section(
    results: dict[tuple[str, int], Measured],
    whole: dict[tuple[str, int], dict[str, list[float]]] | None,
    gflops: float,
    args: argparse.Namespace,
    command: str,
    sides,
) -> str:
    n = len(next(iter(results.values())).csv)
    missing = [s for s in SIDES if s not in sides]
    return "\n".join(
        [
            SECTION,
            "",
            f"`{command}`: {' and '.join(MODEL_TEXT[m] for m in args.models.split(','))}, Nadam, "
            "sparse categorical cross-entropy, "
            f"accuracy, on {args.train_size:,} synthetic rows, no validation, the same rows on every "
            "side, each fit in a fresh child process of one script run. "
            "TF fit: `keras.Sequential` + `model.fit(x, y, batch_size=B, epochs=E, shuffle=True, verbose=0)` "
            "with TensorFlow's defaults and op determinism; Keras-on-JAX fit: the same with "
            "`KERAS_BACKEND=jax` and no tuning; PyTorch loop: `DataLoader(shuffle=True)`, NAdam, one "
            "thread (benchmarks/peers.py); each timed from epoch begin to epoch end. dnnlab: "
            "`dnnlab.training.lifecycle.start` on a YAML spec with its automatic execution settings; "
            "`metrics.csv` is the "
            "`seconds` dnnlab records, `incl. checkpoint` runs to the end of the per-epoch `.keras` save, "
            "metrics.csv and state.json writes. "
            f"Medians of epochs 2..{args.epochs} over {args.rounds} rounds ({n} epochs a cell); the sides' "
            "order rotates round by round. Ratios are peer / dnnlab incl. checkpoint (wall time). "
            f"Matmul floor: 6 x the dense multiply-adds per row x rows at {gflops:.0f} GFLOP/s, TensorFlow's "
            "best float32 rate on 1024x1024 matmuls in the same run. Minimal XLA step: the least a step "
            "must do (the dense layers' forward products, weight and input gradients and a plain SGD "
            "update; no activation, normalization, loss or metric) for every batch of an epoch, compiled "
            "by XLA into one loop, best of 3 (benchmarks/peers.py): what TensorFlow reaches at the "
            "batch's matrix shapes. The CPU table has each process's CPU "
            "seconds over the same spans, less sensitive to other load. "
            "Targets: at least 2x the TF fit and 1.2x Keras-on-JAX at batch 32, within 2x of "
            "the floor, never slower than the TF fit at batch 256."
            + (f" Not measured: {', '.join(missing)} (not installed)." if missing else ""),
            "",
            f"Machine: {machine()}, {versions(sides)}; the machine is shared, so absolute figures drift by "
            "10-20% between runs and more under load.",
            "",
            *tables(results, gflops, args.train_size),
            "",
            *(whole_section(whole, args) if whole else []),
        ]
    )


def whole_section(
    whole: dict[tuple[str, int], dict[str, list[float]]], args: argparse.Namespace
) -> list[str]:
    return [
        f"Whole runs: process start to exit of a {args.whole_epochs}-epoch run (imports, data, model, "
        "tracing, compiling and per-epoch files included), median of "
        f"{args.whole_rounds} round(s), the sides' order rotating. dnnlab: `dnnlab train SPEC -q` with an "
        "empty persistent XLA cache, then at once again on the cache it wrote. Peers: this script's "
        "child doing one plain fit (its import of the benchmark helpers and the data included). "
        "Target: Keras-on-JAX / dnnlab at least 1.2x at batch 32, 256 and 1024.",
        "",
        *whole_table(whole),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit; the first is dropped")
    parser.add_argument("--batch-sizes", default="32,256,1024", help="comma-separated, e.g. 32,256")
    parser.add_argument(
        "--models", default="batch_norm,dropout", help=f"comma-separated of {', '.join(MODELS)}"
    )
    parser.add_argument("--train-size", type=int, default=55000)
    parser.add_argument("--rounds", type=int, default=2, help="fits per side and batch size")
    parser.add_argument(
        "--whole-epochs", type=int, default=10, help="epochs of a whole run; 0: no whole runs"
    )
    parser.add_argument("--whole-rounds", type=int, default=1, help="whole runs per side and case")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS.name} alone")
    parser.add_argument("--child", choices=(*SIDES, "floor", "minimal"), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=tuple(MODELS), default="batch_norm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, int(args.batch_sizes), args.epochs, args.train_size, args.model)))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch (tracing) is not counted")
    command = shlex.join(["python", "benchmarks/train_throughput.py", *sys.argv[1:]])
    sides = available_sides()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    cases = [(model, b) for model in args.models.split(",") for b in batch_sizes]
    gflops = run_child("floor", batch_sizes[0], args.epochs, args.train_size)["gflops"]
    results = measure(sides, cases, args.epochs, args.train_size, args.rounds)
    minimal = {b: run_child("minimal", b, args.epochs, args.train_size)["seconds"] for b in batch_sizes}
    for (_, b), measured in results.items():
        measured.minimal = minimal[b]  # the same dense layers in both models
    whole = None
    if args.whole_epochs:
        whole = whole_runs(sides, cases, args.whole_epochs, args.train_size, args.whole_rounds)
    text = results_section(results, whole, gflops, args, command, sides)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
