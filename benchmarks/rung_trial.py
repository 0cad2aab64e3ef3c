"""The cost of one short rung trial in a warm sweep worker: what ASHA pays per configuration.

One process does what a local sweep worker does (`worker.start_tensorflow`, then `run_trial` after
`run_trial`) on the spec and axes of benchmarks/search.py, each trial given 1 epoch (ASHA's first
rung), its structure (hidden layers and activation: 12 in all) drawn at random as a random search
would. Prints each trial's seconds and whether it traced its model or trained a kept one of its
structure (training.warm_models), then the median of each kind after the first `--warm` trials
(the worker's first trials import and build what later ones reuse). `--no-reuse` keeps no model:
every trial traces, as before workers kept them.

    PYTHONPATH=. python benchmarks/rung_trial.py [--trials 12] [--warm 2] [--no-reuse] [--profile FILE]

`--profile FILE` writes cProfile's statistics of the measured trials (read them with
`python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import cProfile
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import SPEC  # noqa: E402
from shared import machine  # noqa: E402

HIDDEN = [[32], [64, 64], [128, 128]]
ACTIVATIONS = ["relu", "elu", "selu", "tanh"]


def trial_params(draw: random.Random) -> dict:
    """A configuration as benchmarks/search.py's axes give one."""
    return {
        "training.optimizer.learning_rate": 10 ** draw.uniform(-4, -0.5),
        "model.hidden": draw.choice(HIDDEN),
        "model.activation": draw.choice(ACTIVATIONS),
        "model.dropout.rate": draw.uniform(0.0, 0.5),
        "seed": 3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--warm", type=int, default=2, help="first trials left out of the median")
    parser.add_argument("--no-reuse", action="store_true", help="keep no traced model between trials")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    print(machine())
    from dnnlab.sweep.definition import build_sweep
    from dnnlab.sweep.record import SweepDir, new_record
    from dnnlab.sweep.worker import run_trial, start_tensorflow
    from dnnlab.training import warm_models

    start_tensorflow(1)  # a worker of a sweep on small models: one thread
    if args.no_reuse:
        warm_models.disable()
    profile = cProfile.Profile()
    seconds: dict[str, list[float]] = {"traced": [], "reused": []}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
        sweep = build_sweep(folder / "spec.yaml", axes=["model.activation=relu,elu"])
        sweep_dir = SweepDir.create(folder / "runs", sweep.name)
        sweep_dir.write_definition(sweep)
        sweep_dir.write_record(new_record(sweep, [], [], ["benchmark"]))
        draw = random.Random(0)
        for index in range(args.trials):
            trial = {"id": index, "run": f"{index:03d}", "params": trial_params(draw), "epochs": 1}
            measured = index >= args.warm
            reuses = warm_models.reuses()
            started = time.perf_counter()
            if measured and args.profile:
                profile.enable()
            outcome = run_trial(sweep_dir.path, trial)
            if measured and args.profile:
                profile.disable()
            took = time.perf_counter() - started
            kind = "reused" if warm_models.reuses() > reuses else "traced"
            if measured:
                seconds[kind].append(took)
            if outcome["status"] != "completed":
                raise SystemExit(f"trial {index}: {outcome['status']} ({outcome['error']})")
            print(f"trial {index}: {took:.3f} s (training {outcome['train_seconds']:.3f} s, {kind})")
    for kind, kept in seconds.items():
        if kept:
            median = statistics.median(kept)
            print(f"median seconds per 1-epoch trial after {args.warm}, {kind}: {median:.3f} (n={len(kept)})")
    if args.profile:
        profile.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
