"""A search on digits three ways with the same budget of epochs: a random sweep, `dnnlab sweep
--search tpe --prune asha`, and the script a user would write (one process: an Optuna study with
TPE and a median pruner over a plain Keras `model.fit` with optuna_integration's
TFKerasPruningCallback).

Four axes: the learning rate (log-uniform), the hidden layers (width and depth), the activation
(dnnlab gives each its initializer: He for relu/elu, LeCun for selu, Glorot for tanh; the Keras
script pairs them the same way) and the dropout rate. Every trial may train up to EPOCHS epochs;
the budget is BUDGET epochs in all. For each way: the best validation accuracy reached, and the
epochs and wall seconds spent until its best so far came within 0.005 of the best any way reached
(a dnnlab trial counts when its run finishes: run.json's `finished`, its epochs then; the script's
each epoch as Keras ends it). Wall seconds count from the start of the command or script, the
import of TensorFlow included.

    PYTHONPATH=. python benchmarks/search.py [--write] [--budget 117] [--asha-trials 45]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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


def sweep_file(folder: Path, sampler: str, pruner: str, trials: int) -> Path:
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    search = {"sampler": sampler, "pruner": pruner, "trials": trials, "metric": "val_accuracy", "seed": 0}
    search.update({"eta": 3, "startup": 8, "axes": AXES})
    path = folder / f"{sampler}-{pruner}.yaml"
    path.write_text(yaml.safe_dump({"spec": "spec.yaml", "search": search, "jobs": "auto"}, sort_keys=False))
    return path


def run_dnnlab(folder: Path, sampler: str, pruner: str, trials: int) -> dict:
    """Run one search sweep; its timeline of (seconds, epochs spent, value) as trials finish."""
    runs = folder / f"runs-{sampler}-{pruner}"
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "dnnlab", "sweep", str(sweep_file(folder, sampler, pruner, trials))]
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
    events = []
    for trial in record["trials"]:
        run = json.loads((sweep_dir / trial["run"] / "run.json").read_text())
        finished = datetime.datetime.fromisoformat(run["finished"]).timestamp() - started
        value = (trial.get("best") or {}).get("value")
        events.append((finished, trial["epochs_done"], value))
    events.sort()
    return {"wall": wall, "timeline": _timeline(events), "trials": len(record["trials"])}


def _timeline(events: list[tuple[float, int, float | None]]) -> list[tuple[float, int, float]]:
    """(seconds, epochs spent so far, best value so far) after each event."""
    timeline, epochs, best = [], 0, None
    for seconds, spent, value in events:
        epochs += spent
        if value is not None and (best is None or value > best):
            best = value
        if best is not None:
            timeline.append((seconds, epochs, best))
    return timeline


SCRIPT = r"""
import json, sys, time
budget, epochs_max, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = float(sys.argv[4])
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
sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=8)
pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
study.optimize(objective, n_trials=1000, callbacks=[stop_at_budget])
json.dump({"events": events, "trials": len(study.trials)}, open(out, "w"))
"""


def run_script(folder: Path, budget: int) -> dict:
    out = folder / "script.json"
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(budget), str(EPOCHS), str(out), repr(started)],
        capture_output=True,
        text=True,
    )
    wall = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"the Optuna + Keras script failed:\n{result.stderr[-3000:]}")
    data = json.loads(out.read_text())
    events = [(seconds, 1, value) for seconds, _, value in data["events"]]
    return {"wall": wall, "timeline": _timeline(events), "trials": data["trials"]}


def reach(timeline: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    """(seconds, epochs) when the best so far first came to `target` or above."""
    return next(((s, e) for s, e, best in timeline if best >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--budget", type=int, default=117, help="epochs in all (random: budget/9 trials)")
    parser.add_argument("--asha-trials", type=int, default=45, help="tpe+asha configurations")
    args = parser.parse_args()
    where = machine()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        ways = {
            "random sweep (--search random)": run_dnnlab(folder, "random", "none", args.budget // EPOCHS),
            "--search tpe --prune asha": run_dnnlab(folder, "tpe", "asha", args.asha_trials),
            "Optuna TPE + median pruner + Keras fit": run_script(folder, args.budget),
        }
    best = max(way["timeline"][-1][2] for way in ways.values())
    random_best = ways["random sweep (--search random)"]["timeline"][-1][2]
    rows = []
    for name, way in ways.items():
        got = reach(way["timeline"], best - WITHIN)
        at_random = reach(way["timeline"], random_best)
        rows.append(
            f"| {name} | {way['trials']} | {way['timeline'][-1][1]} | {way['wall']:.0f} | "
            f"{way['timeline'][-1][2]:.4f} | {_pair(got)} | {_pair(at_random)} |"
        )
    tpe, rnd = ways["--search tpe --prune asha"], ways["random sweep (--search random)"]
    script = ways["Optuna TPE + median pruner + Keras fit"]
    tpe_random = reach(tpe["timeline"], random_best)
    rnd_random = reach(rnd["timeline"], random_best)
    tpe_best, script_best = reach(tpe["timeline"], best - WITHIN), reach(script["timeline"], best - WITHIN)
    epochs_ratio = f"{tpe_random[1] / rnd_random[1]:.2f}x" if tpe_random else "never (it did not reach it)"
    script_random = reach(script["timeline"], random_best)
    if tpe_best and script_best:
        wall_ratio = f"{tpe_best[0] / script_best[0]:.2f}x the wall time of the Optuna + Keras script"
    elif tpe_random and script_random:  # a threshold both reached: the random sweep's best
        wall_ratio = (
            f"(not both came within 0.005; to the random sweep's best instead) "
            f"{tpe_random[0] / script_random[0]:.2f}x the wall time of the Optuna + Keras script"
        )
    else:
        wall_ratio = "not comparable: the two never reached a common threshold"
    text = f"""{HEADING}

`PYTHONPATH=. python benchmarks/search.py --budget {args.budget} --asha-trials {args.asha_trials}`:
digits (test 0.2 held out, validation 0.2 of the rest; the script splits the same fractions
with its own rows), four axes (learning rate log-uniform 1e-4..0.3; hidden [32], [64, 64] or
[128, 128]; relu/elu/selu/tanh, each with its initializer; dropout rate uniform 0..0.5), up to
{EPOCHS} epochs a trial, Nadam (dnnlab's default optimizer), batches of 32, ranked by the best
val_accuracy. Random: {args.budget // EPOCHS} configurations of {EPOCHS} epochs; tpe+asha:
{args.asha_trials} configurations (rungs 1, 3, 9); the script: Optuna TPE (8 startup trials) +
MedianPruner over Keras `model.fit` with optuna_integration's TFKerasPruningCallback, stopped at
{args.budget} epochs. dnnlab ran its default workers (`jobs: auto`); the script is one process.
"to within 0.005": epochs and wall seconds until the best so far came within 0.005 of the best any
way reached ({best:.4f}); "to random's best": until it reached the random sweep's best
({random_best:.4f}). One repeat (the shared machine's time did not allow three), so the figures
carry the noise of one seed of each search. {where}.

| way | trials | epochs spent | wall s | best val_accuracy | to within 0.005 (s, epochs) | {RANDOM_BEST} |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

tpe+asha reached the random sweep's best in **{epochs_ratio}** the random sweep's epochs (target
<= 0.4x), and came within 0.005 of the best in **{wall_ratio}** (target <= 0.6x).
"""
    print(text)
    if args.write:
        write_section(HEADING, text)


def _pair(got: tuple[float, int] | None) -> str:
    return f"{got[0]:.0f} s, {got[1]}" if got else "never"


if __name__ == "__main__":
    main()
