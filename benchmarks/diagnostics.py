"""What `training.diagnostics: {every: 1}` costs an epoch (target: at most 10%).

Géron's batch-norm model (the one of train_throughput.py) on 55,000 synthetic 28x28 rows, batch
32, no validation. Four sides, each fit in a fresh child process of one script run (dnnlab's
thread settings are per process), rounds alternating their order:

- plain: `model.fit` of Géron's model, TensorFlow's defaults;
- plain + TB histograms: the same with `keras.callbacks.TensorBoard(histogram_freq=1)`, plain
  Keras's nearest feature (weight histograms every epoch);
- dnnlab: `dnnlab.training.lifecycle.start` of the spec;
- dnnlab + diagnostics: the same spec with `training.diagnostics: {every: 1}` (probe of 256 rows,
  layers.csv, TensorBoard scalars and histograms).

Seconds per epoch are medians over epochs 2..E of every round (the first epoch traces), dnnlab's
timed from its epoch start to the end of its per-epoch record, the diagnostics measurement
included. The measurement at initialization (before epoch 1) is reported on its own.

    python benchmarks/diagnostics.py                                  # writes RESULTS.md
    python benchmarks/diagnostics.py --epochs 2 --train-size 5000 --rounds 1 --no-write
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import Epochs, geron_model, keras_timer  # noqa: E402
from shared import machine, write_section  # noqa: E402
from train_throughput import spec_dict  # noqa: E402

from dnnlab.data import datasets  # noqa: E402
from dnnlab.data.checked_spec import check_spec  # noqa: E402
from dnnlab.training import lifecycle  # noqa: E402

SECTION = "## diagnostics"
SIDES = ("plain", "plain_tb_histograms", "dnnlab", "dnnlab_diagnostics")
BATCH = 32


def child(side: str, epochs: int, train_size: int) -> dict:
    """Train one side in this process; per-epoch seconds (and the initial measurement's)."""
    spec = spec_dict(BATCH, epochs, train_size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if side.startswith("plain"):
            dataset = datasets.load(check_spec_dict(spec, tmp).spec.data)
            import keras

            keras.utils.set_random_seed(42)
            timer = Epochs()
            callbacks = [keras_timer(timer)]
            if side == "plain_tb_histograms":
                callbacks.insert(0, keras.callbacks.TensorBoard(str(tmp / "tb"), histogram_freq=1))
            geron_model().fit(
                dataset.x_train,
                dataset.y_train,
                batch_size=BATCH,
                epochs=epochs,
                shuffle=True,
                verbose=0,
                callbacks=callbacks,
            )
            return {"seconds": timer.seconds}
        measured: list[float] = []
        if side == "dnnlab_diagnostics":
            spec["training"]["diagnostics"] = {"every": 1}
            from dnnlab.training.callbacks.diagnostics import DiagnosticsCallback

            measure_once = DiagnosticsCallback._measure

            def timed(self, epoch):  # the whole measurement: probe, layers.csv, TensorBoard
                begin = time.perf_counter()
                measure_once(self, epoch)
                measured.append(time.perf_counter() - begin)

            DiagnosticsCallback._measure = timed
        checked = check_spec_dict(spec, tmp)
        started = time.perf_counter()
        result = lifecycle.start(checked, tmp / "runs", None, ["bench"], progress=False)
        total = time.perf_counter() - started
        rows = (result.run_dir / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        seconds = [float(r.split(",")[header.index("seconds")]) for r in rows[1:]]
        return {"seconds": seconds, "total": total, "measured": measured}


def check_spec_dict(spec: dict, tmp: Path):
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return check_spec(path)


def measure(epochs: int, train_size: int, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {side: [] for side in SIDES} | {"measurement": []}
    for r in range(rounds):
        order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))
        for side in order:
            command = [sys.executable, __file__, "--child", side, "--epochs", str(epochs)]
            command += ["--train-size", str(train_size)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            child = json.loads(out.strip().splitlines()[-1])
            seconds = child["seconds"]
            print(f"round {r + 1} {side}: {[round(s, 2) for s in seconds]}", file=sys.stderr)
            found[side] += seconds[1:]
            # the measurements after epochs 2..E (the first two are at initialization and after
            # epoch 1, which include tracing)
            found.setdefault("measurement", []).extend(child.get("measured", [])[2:])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=SIDES)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=55_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.train_size)))
        return
    where = machine()
    found = measure(args.epochs, args.train_size, args.rounds)
    median = {side: statistics.median(values) for side, values in found.items()}
    overhead = median["dnnlab_diagnostics"] / median["dnnlab"] - 1
    tb = median["plain_tb_histograms"] / median["plain"] - 1
    lines = [
        SECTION,
        "",
        f"`python benchmarks/diagnostics.py --epochs {args.epochs} --rounds {args.rounds}`: Géron's "
        f"batch-norm model on {args.train_size:,} synthetic 28x28 rows, batch {BATCH}, no validation, "
        "each fit in a fresh child process of one script run, rounds alternating the order. "
        f"Medians of epochs 2..{args.epochs} over {args.rounds} round(s). dnnlab's seconds are "
        "metrics.csv's (epoch start to the end of the per-epoch record, the diagnostics measurement "
        "included). Target: diagnostics with `every: 1` cost at most 10% of an epoch.",
        "",
        f"Machine: {where}.",
        "",
        "| side | s/epoch | vs its baseline |",
        "| --- | ---: | ---: |",
        f"| plain fit | {median['plain']:.2f} | |",
        f"| plain fit + TensorBoard(histogram_freq=1) | {median['plain_tb_histograms']:.2f} | {tb:+.1%} |",
        f"| dnnlab | {median['dnnlab']:.2f} | |",
        f"| dnnlab + diagnostics every epoch | {median['dnnlab_diagnostics']:.2f} | {overhead:+.1%} |",
        "",
        f"The measurement itself (probe forward and backward, layers.csv, TensorBoard scalars and "
        f"histograms), timed inside the run: median {median['measurement']:.3f} s, "
        f"{median['measurement'] / median['dnnlab']:.1%} of dnnlab's epoch. This ratio is the "
        "steadier figure on a loaded machine, where epoch times of separate fits drift by more "
        "than the cost measured.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
