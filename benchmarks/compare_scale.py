"""How `dnnlab compare` scales with the number of run directories (against its speed target).

Writes N fake run directories of 50 epochs each (a sweep over activation, learning rate and seed)
into a temporary folder, then times the whole comparison, load + differing keys + ranking + the
JSON and the terminal table rendered to strings, as the median of 3 repeats. Target: 1,000 runs in
under a second on two cores, growing linearly.

    python benchmarks/compare_scale.py                 # print the table
    python benchmarks/compare_scale.py --write         # also write its section of RESULTS.md
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnnlab.results import compare as cmp  # noqa: E402
from dnnlab.results import formats as compare_format  # noqa: E402

SIZES = (250, 500, 1000)
EPOCHS = 50
REPEATS = 3
from shared import RESULTS, machine, write_section  # noqa: E402

SECTION = "## compare_scale"

ACTIVATIONS = [
    {"type": "elu", "alpha": 1.0},
    {"type": "relu"},
    {"type": "selu"},
    {"type": "leaky_relu", "alpha": 0.2},
]
RATES = [0.0003, 0.001, 0.003, 0.01, 0.03]


def resolved_spec(i: int) -> dict:
    """A fully resolved spec, as `dnnlab train` writes it, that varies with i."""
    return {
        "name": f"sweep-{i}",
        "seed": i % 5,
        "data": {
            "dataset": "fashion_mnist",
            "validation": 5000,
            "scaling": "standardize",
            "task": "classification",
            "classes": None,
            "train_size": None,
        },
        "model": {
            "hidden": [300, 100],
            "activation": ACTIVATIONS[i % len(ACTIVATIONS)],
            "initializer": {"type": "he_normal"},
            "normalization": {"type": "batch_norm", "position": "after", "momentum": 0.99, "epsilon": 0.001},
            "input_normalization": {"type": "none"},
            "regularizer": None,
            "constraint": None,
            "dropout": {"type": "dropout", "rate": 0.2, "where": "all"},
            "output": {"units": 10, "activation": "softmax"},
        },
        "training": {
            "epochs": EPOCHS,
            "batch_size": 32,
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "optimizer": {
                "type": "nadam",
                "learning_rate": RATES[(i // 5) % len(RATES)],
                "beta_1": 0.9,
                "beta_2": 0.999,
                "clipnorm": 1.0,
            },
            "schedule": {"type": "exponential", "s": 20, "unit": "epoch", "base": 0.1},
            "early_stopping": {"patience": 10, "monitor": "val_loss", "restore_best_weights": True},
        },
    }


def write_runs(root: Path, n: int) -> list[Path]:
    """n run directories with config.yaml, run.json and a 50-epoch metrics.csv each."""
    paths = []
    for i in range(n):
        run = root / f"sweep-{i}-20240101-120000"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(resolved_spec(i), sort_keys=False))
        rows = ["epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds"]
        for e in range(EPOCHS):
            loss = 0.3 + 1.5 / (1 + e) + (i % 97) * 1e-3
            rows.append(
                f"{e},0.001,{loss:.6f},{1 - loss / 3:.6f},{loss + 0.05:.6f},{1 - loss / 3 - 0.02:.6f},2.5"
            )
        (run / "metrics.csv").write_text("\n".join(rows) + "\n")
        (run / "run.json").write_text(
            json.dumps(
                {
                    "name": f"sweep-{i}",
                    "status": "completed",
                    "started": "2024-01-01T12:00:00",
                    "finished": "2024-01-01T12:02:05",
                    "epochs_done": EPOCHS,
                    "epochs_planned": EPOCHS,
                    "best": {"metric": "val_loss", "mode": "min", "value": loss + 0.05, "epoch": EPOCHS - 1},
                    "seed": i % 5,
                    "config_hash": f"{i:08x}",
                    "versions": {},
                    "host": "bench",
                    "command": ["dnnlab", "train"],
                    "wall_seconds": 125.0,
                }
            )
        )
        paths.append(run)
    return paths


def compare_once(paths: list[Path], fmt: str) -> tuple[float, float]:
    """Wall and CPU seconds for one full comparison rendered as `fmt` (json or table) to a string."""
    from rich.console import Console

    wall, cpu = time.perf_counter(), time.process_time()
    comparison = cmp.compare(paths)
    if fmt == "json":
        compare_format.render_json(comparison)
    else:
        Console(file=io.StringIO(), width=200).print(compare_format.render_table(comparison))
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(sizes: tuple[int, ...]) -> list[tuple[int, str, float, float]]:
    """(runs, format, median wall seconds, median CPU seconds) per size and format."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            root.mkdir()
            paths = write_runs(root, n)
            for fmt in ("json", "table"):
                compare_once(paths, fmt)  # warm the page cache and imports, as a second call finds them
                times = [compare_once(paths, fmt) for _ in range(REPEATS)]
                results.append(
                    (n, fmt, statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))
                )
    return results


def results_section(results: list[tuple[int, str, float, float]]) -> str:
    lines = [
        SECTION,
        "",
        f"`python benchmarks/compare_scale.py --write`: {EPOCHS} epochs per run, median of {REPEATS}, "
        "timing load + differing keys + ranking + rendering (`--format json`, or the rich terminal "
        "table) to a string, in one process with a warm page cache; Python start-up and imports "
        "not included. CPU seconds are less sensitive than wall seconds to other load on the "
        "machine. Target: 1,000 runs under 1 s on two cores, growing linearly.",
        "",
        f"Machine: {machine()}.",
        "",
        "| runs | output | wall s | CPU s | CPU ms per run |",
        "| ---: | --- | ---: | ---: | ---: |",
        *(
            f"| {n} | {fmt} | {wall:.3f} | {cpu:.3f} | {1000 * cpu / n:.3f} |"
            for n, fmt, wall, cpu in results
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write the section into {RESULTS}")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    text = results_section(measure(tuple(args.sizes)))
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
