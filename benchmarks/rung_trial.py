"""The cost of one short rung trial in a warm sweep worker: what ASHA pays per configuration.

One process does what a local sweep worker does (`worker.start_tensorflow`, then `run_trial` after
`run_trial`) on the spec and axes of benchmarks/search.py, each trial given 1 epoch (ASHA's first
rung). Prints each trial's seconds and the median of those after the first `--warm` (the worker's
first trials import and build what later ones reuse).

    PYTHONPATH=. python benchmarks/rung_trial.py [--trials 12] [--warm 2] [--profile FILE]

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


def trial_params(index: int, draw: random.Random) -> dict:
    """A configuration as benchmarks/search.py's axes give one."""
    return {
        "training.optimizer.learning_rate": 10 ** draw.uniform(-4, -0.5),
        "model.hidden": HIDDEN[index % len(HIDDEN)],
        "model.activation": ACTIVATIONS[index % len(ACTIVATIONS)],
        "model.dropout.rate": draw.uniform(0.0, 0.5),
        "seed": 3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--warm", type=int, default=2, help="first trials left out of the median")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    print(machine())
    from dnnlab.sweep.definition import build_sweep
    from dnnlab.sweep.record import SweepDir, new_record
    from dnnlab.sweep.worker import run_trial, start_tensorflow

    start_tensorflow(1)  # a worker of a sweep on small models: one thread
    profile = cProfile.Profile()
    seconds = []
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
        sweep = build_sweep(folder / "spec.yaml", axes=["model.activation=relu,elu"])
        sweep_dir = SweepDir.create(folder / "runs", sweep.name)
        sweep_dir.write_definition(sweep)
        sweep_dir.write_record(new_record(sweep, [], [], ["benchmark"]))
        draw = random.Random(0)
        for index in range(args.trials):
            trial = {"id": index, "run": f"{index:03d}", "params": trial_params(index, draw), "epochs": 1}
            measured = index >= args.warm
            started = time.perf_counter()
            if measured and args.profile:
                profile.enable()
            outcome = run_trial(sweep_dir.path, trial)
            if measured and args.profile:
                profile.disable()
            seconds.append(time.perf_counter() - started)
            if outcome["status"] != "completed":
                raise SystemExit(f"trial {index}: {outcome['status']} ({outcome['error']})")
            print(f"trial {index}: {seconds[-1]:.3f} s (training {outcome['train_seconds']:.3f} s)")
    kept = seconds[args.warm :]
    median = statistics.median(kept)
    print(f"median seconds per 1-epoch trial after {args.warm}: {median:.3f} (n={len(kept)})")
    if args.profile:
        profile.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
