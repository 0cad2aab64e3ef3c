"""A search on digits three ways with the same budget of epochs: a random sweep, `dnnlab sweep
--search tpe --prune asha`, and the script a user would write (one process: an Optuna study with
TPE and a median pruner over a plain Keras `model.fit` with optuna_integration's
TFKerasPruningCallback).

Four axes: the learning rate (log-uniform), the hidden layers (width and depth), the activation
(dnnlab gives each its initializer: He for relu/elu, LeCun for selu, Glorot for tanh; the Keras
script pairs them the same way) and the dropout rate. Every trial may train up to EPOCHS epochs;
the budget is BUDGET epochs in all. Every way is counted epoch by epoch, in the order the epochs
ended: a dnnlab epoch when its validation ended (the wall time TensorBoard's `epoch_accuracy`
event records, its value from metrics.csv), the script's as Keras's `on_epoch_end` saw it. Wall
seconds count from the start of the command or script, the import of TensorFlow included. Every
way is judged on its first BUDGET epochs (an ASHA search given more configurations than the
budget needs spends no more than the others).

For each way: the best validation accuracy reached, and the epochs and seconds until its best so
far came within 0.005 of the best any way reached, and until it reached the random sweep's best.
The targets are read two ways, both printed: as the sentence reads (tpe+asha reaches the random
sweep's best within 0.4x the epochs the random sweep spent, and within 0.6x the wall time the
script took), and strictly (against the epochs the random sweep needed to reach its own best, and
the seconds the script needed to reach the same threshold). `--repeats N` runs every way N times,
repeat r with sampler seed r (the same training seed), and reports the median of each ratio.

    PYTHONPATH=. python benchmarks/search.py [--write] [--budget 117] [--asha-trials 45] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## search"
RANDOM_BEST = "to random's best (s, epochs)"
WITHIN_HEADER = "to within 0.005 (s, epochs)"
EPOCHS = 9  # a trial's most; ASHA's rungs are 1, 3 and 9 epochs
WITHIN = 0.005
SPEC = {
    "name": "digits-search",
    "seed": 3,
    "data": {"dataset": "digits", "validation": 0.2},
    "model": {"hidden": [64, 64], "activation": "relu", "dropout": {"rate": 0.2}},
    "training": {"epochs": EPOCHS, "batch_size": 32, "monitor": "val_accuracy", "early_stopping": None},
}
AXES = {
    "training.optimizer.learning_rate": "loguniform(1e-4,3e-1)",
    "model.hidden": [[32], [64, 64], [128, 128]],
    "model.activation": ["relu", "elu", "selu", "tanh"],
    "model.dropout.rate": "uniform(0.0,0.5)",
}
INITIALIZER = {"relu": "he_normal", "elu": "he_normal", "selu": "lecun_normal", "tanh": "glorot_uniform"}


def sweep_file(folder: Path, sampler: str, pruner: str, trials: int, seed: int) -> Path:
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    search = {"sampler": sampler, "pruner": pruner, "trials": trials, "metric": "val_accuracy", "seed": seed}
    search.update({"eta": 3, "startup": 8, "axes": AXES})
    path = folder / f"{sampler}-{pruner}.yaml"
    path.write_text(yaml.safe_dump({"spec": "spec.yaml", "search": search, "jobs": "auto"}, sort_keys=False))
    return path


def run_dnnlab(folder: Path, sampler: str, pruner: str, trials: int, seed: int, budget: int) -> dict:
    """Run one search sweep; its timeline of (seconds, epochs spent, best so far), epoch by epoch."""
    runs = folder / f"runs-{sampler}-{pruner}-{seed}"
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "dnnlab", "sweep", str(sweep_file(folder, sampler, pruner, trials, seed))]
        + ["--runs-dir", str(runs), "--json", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"dnnlab sweep failed:\n{result.stderr[-3000:]}")
    record = json.loads(result.stdout)
    (sweep_dir,) = runs.iterdir()
    events = [event for trial in record["trials"] for event in _epochs(sweep_dir / trial["run"], started)]
    return {"wall": wall, "timeline": _timeline(sorted(events), budget), "trials": len(record["trials"])}


def _epochs(run: Path, started: float) -> list[tuple[float, int, float]]:
    """(seconds since `started`, 1, val_accuracy) for each epoch of a trial's run: the value from
    metrics.csv, the time from the `epoch_accuracy` event Keras's TensorBoard callback wrote when
    the epoch's validation ended (a run resumed after a rung writes a new event file)."""
    if not (run / "metrics.csv").is_file():  # a repeat of an earlier configuration: not trained
        return []
    import tensorflow as tf

    with open(run / "metrics.csv", newline="") as handle:
        values = {int(row["epoch"]): float(row["val_accuracy"]) for row in csv.DictReader(handle)}
    ended = {}
    for path in (run / "tensorboard" / "validation").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if any(value.tag == "epoch_accuracy" for value in event.summary.value):
                ended[event.step] = event.wall_time
    return [(ended[epoch] - started, 1, value) for epoch, value in values.items()]


def _timeline(events: list[tuple[float, int, float | None]], budget: int) -> list[tuple[float, int, float]]:
    """(seconds, epochs spent so far, best value so far) after each event, up to `budget` epochs."""
    timeline, epochs, best = [], 0, None
    for seconds, spent, value in events:
        if epochs + spent > budget:
            break
        epochs += spent
        if value is not None and (best is None or value > best):
            best = value
        if best is not None:
            timeline.append((seconds, epochs, best))
    return timeline


SCRIPT = r"""
import json, sys, time
budget, epochs_max, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start, seed = float(sys.argv[4]), int(sys.argv[5])
import optuna
import keras
from optuna_integration import TFKerasPruningCallback
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

x, y = load_digits(return_X_y=True)
# as dnnlab's digits: 20% held out for test (unused here), then 20% of the rest for validation
x, _, y, _ = train_test_split(x, y, test_size=0.2, random_state=3, stratify=y)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=3, stratify=y)
scaler = StandardScaler().fit(x_train)
x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
INIT = {"relu": "he_normal", "elu": "he_normal", "selu": "lecun_normal", "tanh": "glorot_uniform"}
HIDDEN = {"32": [32], "64x64": [64, 64], "128x128": [128, 128]}
events, spent = [], [0]

class Record(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        spent[0] += 1
        events.append((time.time() - start, spent[0], float(logs["val_accuracy"])))

def objective(trial):
    lr = trial.suggest_float("learning_rate", 1e-4, 3e-1, log=True)
    hidden = HIDDEN[trial.suggest_categorical("hidden", list(HIDDEN))]
    act = trial.suggest_categorical("activation", list(INIT))
    rate = trial.suggest_float("dropout", 0.0, 0.5)
    keras.utils.set_random_seed(3)
    layers = [keras.Input((64,))]
    for units in hidden:
        dense = keras.layers.Dense(units, activation=act, kernel_initializer=INIT[act])
        layers += [keras.layers.Dropout(rate), dense]
    layers += [keras.layers.Dropout(rate), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Nadam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruning = TFKerasPruningCallback(trial, "val_accuracy")
    history = model.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=min(epochs_max, budget - spent[0]),
        batch_size=32, verbose=0, callbacks=[Record(), pruning],
    )
    return max(history.history["val_accuracy"])

def stop_at_budget(study, trial):
    if spent[0] >= budget:
        study.stop()

optuna.logging.set_verbosity(optuna.logging.ERROR)
sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
study.optimize(objective, n_trials=1000, callbacks=[stop_at_budget])
json.dump({"events": events, "trials": len(study.trials)}, open(out, "w"))
"""


def run_script(folder: Path, budget: int, seed: int) -> dict:
    out = folder / f"script-{seed}.json"
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(budget), str(EPOCHS), str(out), repr(started), str(seed)],
        capture_output=True,
        text=True,
    )
    wall = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"the Optuna + Keras script failed:\n{result.stderr[-3000:]}")
    data = json.loads(out.read_text())
    events = [(seconds, 1, value) for seconds, _, value in data["events"]]
    return {"wall": wall, "timeline": _timeline(events, budget), "trials": data["trials"]}


def reach(timeline: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    """(seconds, epochs) when the best so far first came to `target` or above."""
    return next(((s, e) for s, e, best in timeline if best >= target), None)


RANDOM, ASHA, SCRIPT_WAY = (
    "random sweep (--search random)",
    "--search tpe --prune asha",
    "Optuna TPE + median pruner + Keras fit",
)


def one_repeat(folder: Path, budget: int, asha_trials: int, seed: int) -> tuple[list[str], dict]:
    """The three ways with sampler seed `seed`: the table's rows and the repeat's two ratios."""
    ways = {
        RANDOM: run_dnnlab(folder, "random", "none", budget // EPOCHS, seed, budget),
        ASHA: run_dnnlab(folder, "tpe", "asha", asha_trials, seed, budget),
        SCRIPT_WAY: run_script(folder, budget, seed),
    }
    best = max(way["timeline"][-1][2] for way in ways.values())
    random_best = ways[RANDOM]["timeline"][-1][2]
    rows = []
    for name, way in ways.items():
        got = reach(way["timeline"], best - WITHIN)
        at_random = reach(way["timeline"], random_best)
        rows.append(
            f"| {seed} | {name} | {way['trials']} | {way['timeline'][-1][1]} | {way['wall']:.0f} | "
            f"{way['timeline'][-1][2]:.4f} | {_pair(got)} | {_pair(at_random)} |"
        )
    tpe_random = reach(ways[ASHA]["timeline"], random_best)
    rnd_random = reach(ways[RANDOM]["timeline"], random_best)
    tpe_best, script_best = (
        reach(ways[ASHA]["timeline"], best - WITHIN),
        reach(ways[SCRIPT_WAY]["timeline"], best - WITHIN),
    )
    script_random = reach(ways[SCRIPT_WAY]["timeline"], random_best)
    ratios = {
        # as the targets read: the random sweep's epochs spent, the script's whole wall time
        "epochs": tpe_random[1] / ways[RANDOM]["timeline"][-1][1] if tpe_random else None,
        "wall": tpe_random[0] / ways[SCRIPT_WAY]["wall"] if tpe_random else None,
        # strictly: the epochs the random sweep needed to reach its own best; the seconds the
        # script needed to reach a threshold both reached
        "epochs_strict": tpe_random[1] / rnd_random[1] if tpe_random else None,
        "wall_strict": None,
        "wall_to": None,
    }
    if tpe_best and script_best:
        ratios.update(wall_strict=tpe_best[0] / script_best[0], wall_to="within 0.005 of the best")
    elif tpe_random and script_random:  # a threshold both reached: the random sweep's best
        ratios.update(wall_strict=tpe_random[0] / script_random[0], wall_to="the random sweep's best")
    return rows, ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--budget", type=int, default=117, help="epochs in all (random: budget/9 trials)")
    parser.add_argument("--asha-trials", type=int, default=45, help="tpe+asha configurations")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every way, sampler seeds 0..N-1")
    args = parser.parse_args()
    where = machine()
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as temp:
        for seed in range(args.repeats):
            got_rows, got = one_repeat(Path(temp), args.budget, args.asha_trials, seed)
            rows += got_rows
            ratios.append(got)

    def each(key: str) -> list[float | None]:
        return [r[key] for r in ratios]

    command = (
        f"PYTHONPATH=. python benchmarks/search.py --budget {args.budget} "
        f"--asha-trials {args.asha_trials} --repeats {args.repeats}"
    )
    header = "| repeat | way | trials | epochs spent | wall s | best val_accuracy | "
    header += f"{WITHIN_HEADER} | {RANDOM_BEST} |"
    text = f"""{HEADING}

`{command}`:
digits (test 0.2 held out, validation 0.2 of the rest; the script splits the same fractions
with its own rows), four axes (learning rate log-uniform 1e-4..0.3; hidden [32], [64, 64] or
[128, 128]; relu/elu/selu/tanh, each with its initializer; dropout rate uniform 0..0.5), up to
{EPOCHS} epochs a trial, Nadam (dnnlab's default optimizer), batches of 32, ranked by the best
val_accuracy. Random: {args.budget // EPOCHS} configurations of {EPOCHS} epochs; tpe+asha: up to
{args.asha_trials} configurations (rungs 1, 3, 9); the script: Optuna TPE (8 startup trials) +
MedianPruner over Keras `model.fit` with optuna_integration's TFKerasPruningCallback. Every way is
counted epoch by epoch as its epochs ended (dnnlab's from the TensorBoard event of each epoch's
validation) and judged on its first {args.budget} epochs (matched budget; "wall s" is the whole
command's). dnnlab ran its default workers (`jobs: auto`); the script is one process. "to within
0.005": epochs and wall seconds until the best so far came within 0.005 of the best any way
reached in that repeat; "to random's best": until it reached the random sweep's best.
{args.repeats} repeat(s), repeat r with sampler seed r. {where}.

{header}
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

As the targets read, tpe+asha reached the random sweep's best in **{_median(each("epochs"))}** the
epochs the random sweep spent ({_each(each("epochs"))}; target <= 0.4x), and in
**{_median(each("wall"))}** the wall time the Optuna + Keras script took ({_each(each("wall"))};
target <= 0.6x).

Strictly: against the epochs the random sweep needed to reach its own best,
**{_median(each("epochs_strict"))}** ({_each(each("epochs_strict"))}); against the seconds the
script needed to reach a threshold both reached (within 0.005 of the best where the script came
there too, else the random sweep's best), **{_median(each("wall_strict"))}**
({_each(each("wall_strict"), ratios)}).
"""
    print(text)
    if args.write:
        write_section(HEADING, text)


def _median(values: list[float | None]) -> str:
    """The median ratio, a repeat that never reached the threshold counting as the worst."""
    median = statistics.median(math.inf if v is None else v for v in values)
    never = sum(v is None for v in values)
    note = f" ({never} repeat(s) never reached it)" if never else ""
    return ("never" if math.isinf(median) else f"{median:.2f}x") + note


def _each(values: list[float | None], ratios: list[dict] | None = None) -> str:
    parts = []
    for index, value in enumerate(values):
        part = "never" if value is None else f"{value:.2f}x"
        if ratios is not None and value is not None:
            part += f" to {ratios[index]['wall_to']}"
        parts.append(part)
    return ", ".join(parts)


def _pair(got: tuple[float, int] | None) -> str:
    return f"{got[0]:.0f} s, {got[1]}" if got else "never"


if __name__ == "__main__":
    main()
