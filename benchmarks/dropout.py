"""Epoch time of a dropout model in `dnnlab train` against a plain `model.fit`.

Géron's dropout model (784 -> Dropout 0.2 -> Dense 300 elu he_normal -> Dropout 0.2 -> Dense
100 elu he_normal -> Dropout 0.2 -> Dense 10 softmax; Nadam, sparse categorical cross-entropy,
accuracy, batch 32) on dnnlab's synthetic data of 784 features, 55,000 training rows and no
validation, the same rows on both sides, op determinism on both sides:

- plain: `keras.Sequential` with Keras's Dropout, `model.fit(x, y, batch_size=32, shuffle=True,
  verbose=0)` with TensorFlow's defaults, timed from `on_epoch_begin` to `on_epoch_end`;
- dnnlab: `dnnlab.training.lifecycle.start` on the same model as a YAML spec (dnnlab's seeded dropout, its
  automatic execution plan: XLA and a few hundred steps per call), timed from its epoch start to
  the end of its per-epoch record (checkpoint, metrics.csv, state.json).

Each fit runs in a fresh child process of one script run (dnnlab sizes TensorFlow's thread pools
once per process), the sides alternating round by round. Medians of epochs 2..E over every round.

    python benchmarks/dropout.py --write                 # the full run, writes RESULTS.md
    python benchmarks/dropout.py --epochs 2 --rounds 1 --train-size 5000
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnnlab import runtime  # noqa: E402

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from peers import Epochs, keras_timer  # noqa: E402
from shared import RESULTS, machine, write_section  # noqa: E402
from train_throughput import epoch_clock  # noqa: E402

from dnnlab.data import datasets  # noqa: E402
from dnnlab.data.checked_spec import check_spec  # noqa: E402
from dnnlab.training import lifecycle  # noqa: E402

SECTION = "## dropout"
SEED = 42
BATCH = 32
RATE = 0.2


def spec_dict(epochs: int, train_size: int) -> dict:
    """Géron's dropout model as a dnnlab spec, on synthetic data without validation."""
    return {
        "name": "bench-dropout",
        "seed": SEED,
        "data": {
            "dataset": {"type": "synthetic", "shape": [784], "classes": 10, "train": train_size, "test": 0},
            "validation": 0,
        },
        "model": {
            "hidden": [300, 100],
            "activation": "elu",
            "initializer": "he_normal",
            "dropout": {"type": "dropout", "rate": RATE, "where": "all"},
        },
        "training": {
            "epochs": epochs,
            "batch_size": BATCH,
            "optimizer": "nadam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "monitor": "loss",
            "deterministic": True,
        },
    }


def geron_model() -> keras.Model:
    """The dropout model as Géron writes it, with Keras's Dropout."""
    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dropout(RATE),
            keras.layers.Dense(300, activation="elu", kernel_initializer="he_normal"),
            keras.layers.Dropout(RATE),
            keras.layers.Dense(100, activation="elu", kernel_initializer="he_normal"),
            keras.layers.Dropout(RATE),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Nadam(), metrics=["accuracy"]
    )
    return model


def child(side: str, epochs: int, train_size: int) -> dict:
    """One fit in this process: its per-epoch seconds (and dnnlab's execution plan)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec_dict(epochs, train_size), sort_keys=False))
        checked = check_spec(spec_path)
        if side == "plain":
            keras.utils.set_random_seed(SEED)
            tf.config.experimental.enable_op_determinism()
            loaded = datasets.load(checked.spec.data)
            timed = Epochs()
            geron_model().fit(
                loaded.x_train, loaded.y_train, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0,
                callbacks=[keras_timer(timed)],
            )  # fmt: skip
            return {"seconds": timed.seconds}
        begins, ends = [], []
        with epoch_clock(begins, ends):
            result = lifecycle.start(checked, Path(tmp) / "runs", None, ["bench"])
        if result.status != "completed":
            raise RuntimeError(f"dnnlab run ended {result.status}")
        execution = json.loads((result.run_dir / "state.json").read_text())["execution"]
        return {"seconds": [e[0] - b[0] for b, e in zip(begins, ends)], "execution": execution}


def run_child(side: str, epochs: int, train_size: int) -> dict:
    command = [sys.executable, __file__, "--child", side, "--epochs", str(epochs)]
    done = subprocess.run([*command, "--train-size", str(train_size)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(epochs: int, train_size: int, rounds: int) -> tuple[dict[str, list[float]], dict]:
    """Epochs 2..E of every round, per side, the sides alternating which runs first."""
    seconds: dict[str, list[float]] = {"plain": [], "dnnlab": []}
    execution: dict = {}
    for r in range(rounds):
        for side in ("plain", "dnnlab") if r % 2 == 0 else ("dnnlab", "plain"):
            result = run_child(side, epochs, train_size)
            seconds[side] += result["seconds"][1:]
            execution = result.get("execution", execution)
            times = " ".join(f"{x:.2f}" for x in result["seconds"])
            print(f"round {r + 1} {side:6s} {times}", file=sys.stderr, flush=True)
    return seconds, execution


def results_section(
    seconds: dict[str, list[float]], execution: dict, args: argparse.Namespace, command: str, host: str
) -> str:
    plain, ours = statistics.median(seconds["plain"]), statistics.median(seconds["dnnlab"])
    xla = "on" if execution.get("jit_compile") else "off"
    return "\n".join(
        [
            SECTION,
            "",
            f"`{command}`: Géron's dropout model (784 -> Dropout 0.2 -> Dense 300 elu he_normal -> "
            "Dropout 0.2 -> Dense 100 elu he_normal -> Dropout 0.2 -> Dense 10 softmax; Nadam, sparse "
            f"categorical cross-entropy, accuracy, batch {BATCH}) on {args.train_size:,} synthetic rows of "
            "784 features, no validation, the same rows on both sides, op determinism on both, each fit in "
            "a fresh child process of one script run, the sides alternating. Plain: Keras's Dropout, "
            "`model.fit(x, y, batch_size=32, shuffle=True, verbose=0)` with TensorFlow's defaults. dnnlab: "
            "`dnnlab.training.lifecycle.start` on the spec (dnnlab's seeded dropout, Threefry masks "
            "under XLA; "
            f"XLA {xla}, {execution.get('steps_per_execution')} steps per call), per-epoch checkpoint "
            "included. "
            f"Medians of epochs 2..{args.epochs} over {args.rounds} rounds. Target: dnnlab at least 2.5x "
            "faster.",
            "",
            f"Machine: {host}, TensorFlow {tf.__version__}, Keras {keras.__version__}; the machine "
            "is shared, so absolute figures drift between runs: compare within one run.",
            "",
            "| plain fit s/epoch | dnnlab s/epoch incl. checkpoint | speedup |",
            "| ---: | ---: | ---: |",
            f"| {plain:.2f} | {ours:.2f} | {plain / ours:.2f}x |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit; the first is dropped")
    parser.add_argument("--train-size", type=int, default=55000)
    parser.add_argument("--rounds", type=int, default=2, help="fits per side")
    parser.add_argument("--write", action="store_true", help=f"write a section to {RESULTS.name}")
    parser.add_argument("--child", choices=("plain", "dnnlab"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.train_size)))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch (tracing) is not counted")
    command = shlex.join(["python", "benchmarks/dropout.py", *sys.argv[1:]])
    host = machine()  # the load at the start, before the fits add to it
    seconds, execution = measure(args.epochs, args.train_size, args.rounds)
    text = results_section(seconds, execution, args, command, host)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
