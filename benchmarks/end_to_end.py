"""`dnnlab train configs/quickstart.yaml` against the plain Keras script it replaces, command to exit.

Most runs users make are small, and there start-up, tracing and the run directory's files weigh as
much as the training. Each round runs, alternating, `dnnlab train configs/quickstart.yaml
--runs-dir TMP -q` and a plain Keras script written to a temporary file that does the same work
the way a user would write it: import, load scikit-learn's digits, the same stratified split and
standardization, the same model, Nadam with the same per-epoch exponential decay, validation, 20
epochs, early stopping (patience 6, best weights restored), ModelCheckpoint(save_best_only) and
the test score dnnlab reports. With `--baseline PATH` a checkout of dnnlab (e.g. the main branch)
runs in the same rounds, for a before/after in one script run. `dnnlab check` and `dnnlab summary`
of the spec are timed once per round as well.

    PYTHONPATH=. python benchmarks/end_to_end.py [--rounds 3] [--baseline ../dnnlab-main] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared import RESULTS, machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "configs" / "quickstart.yaml"
HEADING = "## end_to_end"

PLAIN_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
n_val = round(0.15 * len(x_train))
x_val, y_val, x_train, y_train = x_train[:n_val], y_train[:n_val], x_train[n_val:], y_train[n_val:]
mean, std = x_train.mean(axis=0), x_train.std(axis=0)
std[std == 0] = 1.0
x_train, x_val, x_test = (((a - mean) / std).astype("float32") for a in (x_train, x_val, x_test))

keras.utils.set_random_seed(42)
model = keras.Sequential([keras.Input((64,))])
for units in (128, 64):
    model.add(keras.layers.Dense(units, activation="elu", kernel_initializer="he_normal"))
    model.add(keras.layers.BatchNormalization())
    model.add(keras.layers.Dropout(0.2))
model.add(keras.layers.Dense(10, activation="softmax"))
steps = -(-len(x_train) // 32)
schedule = keras.optimizers.schedules.ExponentialDecay(0.002, steps, 0.1 ** (1 / 20), staircase=True)
model.compile(
    optimizer=keras.optimizers.Nadam(learning_rate=schedule),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
callbacks = [
    keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True),
    keras.callbacks.ModelCheckpoint(os.path.join(sys.argv[1], "best.keras"), save_best_only=True),
]
model.fit(
    x_train, y_train, epochs=20, batch_size=32, validation_data=(x_val, y_val), callbacks=callbacks, verbose=0
)
print(model.evaluate(x_test, y_test, verbose=0, return_dict=True))
"""


def _commit(checkout: Path) -> str:
    """A checkout's name in RESULTS.md: "commit 63991cb" for a git checkout, else its folder's name."""
    command = ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return f"commit {done.stdout.strip()}" if done.returncode == 0 else checkout.name


def timed(command: list[str], checkout: Path = ROOT) -> float:
    """Wall seconds from the command's start to its exit; a failure stops the benchmark. It runs
    in `checkout` with it on PYTHONPATH: `python -m` puts the working folder first on sys.path."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another dnnlab checkout to time in the same rounds")
    parser.add_argument("--write", action="store_true", help=f"replace the {HEADING} section of {RESULTS}")
    args = parser.parse_args()

    contenders = {"dnnlab": ROOT}
    if args.baseline:
        contenders[f"dnnlab at {_commit(args.baseline)}"] = args.baseline.resolve()
    times: dict[str, list[float]] = {name: [] for name in [*contenders, "plain Keras script"]}
    starts: dict[str, list[float]] = {}
    setting, load_before = machine(), os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain_keras.py"
        plain.write_text(PLAIN_SCRIPT)
        for round_ in range(args.rounds):
            for name, checkout in contenders.items():
                runs = Path(tmp) / f"runs-{round_}"
                train = ["train", str(SPEC), "--runs-dir", str(runs), "-q"]
                times[name].append(timed([sys.executable, "-m", "dnnlab", *train], checkout))
                for command in ("check", "summary"):
                    starts.setdefault(f"`dnnlab {command}` ({name})", []).append(
                        timed([sys.executable, "-m", "dnnlab", command, str(SPEC)], checkout)
                    )
            checkpoints = Path(tmp) / f"plain-{round_}"
            checkpoints.mkdir()
            plain_command = [sys.executable, str(plain), str(checkpoints)]
            times["plain Keras script"].append(timed(plain_command))
            latest = ", ".join(f"{name} {values[-1]:.1f} s" for name, values in times.items())
            print(f"round {round_ + 1}: {latest}", file=sys.stderr)
    load_after = os.getloadavg()

    medians = {name: statistics.median(values) for name, values in times.items()}
    plain_median = medians["plain Keras script"]
    rows = "\n".join(
        f"| {name} | {' / '.join(f'{t:.1f}' for t in values)} | {medians[name]:.1f} | "
        f"{medians[name] / plain_median:.2f} |"
        for name, values in times.items()
    )
    start_rows = "\n".join(
        f"| {name} | {' / '.join(f'{t:.2f}' for t in values)} | {statistics.median(values):.2f} |"
        for name, values in starts.items()
    )
    ratio = medians["dnnlab"] / plain_median
    # The baseline is named by its commit: its folder exists on one machine only.
    options = f"--rounds {args.rounds}" + (
        f" --baseline CHECKOUT` (CHECKOUT: a checkout of {_commit(args.baseline)})" if args.baseline else "`"
    )
    text = f"""{HEADING}

`python benchmarks/end_to_end.py {options}:
`dnnlab train configs/quickstart.yaml --runs-dir TMP -q` against a plain Keras script doing the same
work (import, digits, the same split and standardization, model, Nadam with per-epoch exponential
decay, validation, 20 epochs, early stopping, ModelCheckpoint(save_best_only), test score), from
command to exit, alternating in each round. {setting}; 1/5/15-minute load averages
{_load(load_before)} before and {_load(load_after)} after: the machine was shared, so compare figures
within this table only.

| command | wall seconds per round | median | x plain |
| --- | --- | ---: | ---: |
{rows}

dnnlab took **{ratio:.2f}x** the plain script's wall time (target: at most 0.7x).

| start-up | wall seconds per round | median |
| --- | --- | ---: |
{start_rows}
"""
    print(text)
    if args.write:
        write_section(HEADING, text)


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    main()
