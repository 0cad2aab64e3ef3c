"""The measurements behind dnnlab.training.execution's cost model: for a few models and batch
sizes, the first epoch (tracing, and compiling under XLA) and the later epochs of `dnnlab train`
with XLA on and off, each in a fresh process with the persistent XLA cache off.

Prints one line per fit and, at the end, the figures the cost model is fitted on: per-step
seconds with and without XLA (median of epochs 3..E), and the compile: XLA's extra seconds over
its first two epochs against its later ones, less the same difference without XLA (XLA's second
epoch was seconds slow at some batch sizes, as if compiling again), and over the first alone.

    PYTHONPATH=. python benchmarks/plan_costs.py [--epochs 4] [--rounds 1] [--train-size 30000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared import GERON_BN_MODEL, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DROPOUT_MODEL = {
    "hidden": [300, 100],
    "activation": "elu",
    "initializer": "he_normal",
    "dropout": {"type": "dropout", "rate": 0.2, "where": "all"},
}


def spec(model: dict, shape: list[int], batch: int, epochs: int, rows: int) -> dict:
    return {
        "name": "cost",
        "seed": 42,
        "data": {
            "dataset": {"type": "synthetic", "shape": shape, "classes": 10, "train": rows, "test": 0},
            "validation": 0,
        },
        "model": model,
        "training": {"epochs": epochs, "batch_size": batch, "optimizer": "nadam", "monitor": "loss"},
    }


def cases(epochs: int, rows: int) -> dict[str, dict]:
    found = {f"batch-norm b{b}": spec(GERON_BN_MODEL, [28, 28], b, epochs, rows) for b in (32, 256, 1024)}
    found["dropout b32"] = spec(DROPOUT_MODEL, [784], 32, epochs, rows)
    found["quick start b32"] = spec(
        {"hidden": [128, 64], "activation": "elu", "initializer": "he_normal"}, [64], 32, epochs, 1223
    )
    return found


def fit(tmp: Path, label: str, spec_: dict, jit: bool) -> dict:
    path = tmp / "spec.yaml"
    spec_ = {**spec_, "training": {**spec_["training"], "jit_compile": jit}}
    path.write_text(yaml.safe_dump(spec_, sort_keys=False))
    env = {**os.environ, "DNNLAB_XLA_CACHE": "off", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "dnnlab", "train", str(path), "--runs-dir", str(tmp / "runs"), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
    run = Path(done.stdout.strip().splitlines()[-1])
    with open(run / "metrics.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    state = json.loads((run / "state.json").read_text())
    steps = -(-spec_["data"]["dataset"]["train"] // spec_["training"]["batch_size"])
    return {"seconds": seconds, "steps": steps, "execution": state["execution"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="at least 3")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=30000)
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    found: dict[tuple[str, bool], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for label, spec_ in cases(args.epochs, args.train_size).items():
                for jit in (r % 2 == 0, r % 2 == 1):
                    result = fit(Path(tmp), label, spec_, jit)
                    found.setdefault((label, jit), []).append(result)
                    times = " ".join(f"{s:.2f}" for s in result["seconds"])
                    print(f"{label} xla={jit}: {times}", file=sys.stderr, flush=True)
    print("| case | steps/epoch | ms/step XLA off | ms/step XLA on | XLA's extra first epoch s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label in cases(args.epochs, args.train_size):
        on, off = found[(label, True)], found[(label, False)]
        steps = on[0]["steps"]
        later = {
            k: statistics.median(s for f in v for s in f["seconds"][1:])
            for k, v in (("on", on), ("off", off))
        }
        first = {k: statistics.median(f["seconds"][0] for f in v) for k, v in (("on", on), ("off", off))}
        compile_ = (first["on"] - later["on"]) - (first["off"] - later["off"])
        print(
            f"| {label} | {steps} | {1000 * later['off'] / steps:.3f} | {1000 * later['on'] / steps:.3f} "
            f"| {compile_:.2f} |"
        )
    print(machine(), file=sys.stderr)


if __name__ == "__main__":
    main()
