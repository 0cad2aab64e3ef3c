"""`dnnlab sweep` against the same trials as separate `dnnlab train` commands, in one script run.

The sweep is configs/sweeps/quickstart_grid.yaml: the quick start at 10 epochs, 2 activations x
2 learning rates x 3 seeds = 12 trials, with the default --jobs. The baseline runs the same 12
trials as `dnnlab train` commands one after another. Per-trial overhead is a trial's wall time
minus its training seconds (run.json's wall_seconds): for a command, the whole process
(TensorFlow's import included); for a sweep trial, its time in a warm worker.

    PYTHONPATH=. python benchmarks/sweep.py [--write]   # --write: replace the section in RESULTS.md
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILE = ROOT / "configs" / "sweeps" / "quickstart_grid.yaml"
HEADING = "## sweep"


def dnnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dnnlab", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def run_sweep(runs: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    result = dnnlab("sweep", str(SWEEP_FILE), "--runs-dir", str(runs), "--json")
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the sweep failed ({result.returncode}):\n{result.stderr[-3000:]}")
    chosen = next((line for line in result.stderr.splitlines() if "worker(s)" in line), "")
    record = json.loads(result.stdout)
    record["chosen"] = chosen
    return wall, record


def run_commands(runs: Path, trials: list[dict]) -> tuple[float, list[float]]:
    """The sweep's trials as `dnnlab train` commands, one after another; the overhead of each."""
    overheads = []
    started = time.perf_counter()
    for trial in trials:
        overrides = ["-o", "training.epochs=10"]
        for key, value in trial["params"].items():
            overrides += ["-o", f"{key}={value}"]
        begun = time.perf_counter()
        result = dnnlab("train", "configs/quickstart.yaml", *overrides, "--runs-dir", str(runs))
        wall = time.perf_counter() - begun
        if result.returncode != 0:
            raise SystemExit(f"dnnlab train failed:\n{result.stderr[-3000:]}")
        run_dir = Path(result.stdout.strip().splitlines()[-1])
        run_dir = run_dir if run_dir.is_absolute() else ROOT / run_dir
        trained = json.loads((run_dir / "run.json").read_text())["wall_seconds"]
        overheads.append(wall - trained)
    return time.perf_counter() - started, overheads


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setting = machine()
        sweep_wall, record = run_sweep(Path(tmp) / "sweep")
        trials = record["trials"]
        sweep_overheads = [t["wall_seconds"] - t["train_seconds"] for t in trials]
        commands_wall, command_overheads = run_commands(Path(tmp) / "train", trials)
    ratio = sweep_wall / commands_wall
    text = f"""{HEADING}

`python benchmarks/sweep.py`: {len(trials)} trials of `configs/sweeps/quickstart_grid.yaml` (the quick
start at 10 epochs, 2 activations x 2 learning rates x 3 seeds) as one `dnnlab sweep` with the
default `--jobs`, against the same trials as `dnnlab train` commands run one after another, in one
script run. {setting}. Workers chosen: {record["chosen"].split(": ", 1)[-1] or "?"}

| | wall seconds | per-trial overhead, mean (min-max) |
| --- | ---: | --- |
| `dnnlab sweep` | {sweep_wall:.1f} | {_spread(sweep_overheads)} |
| 12 x `dnnlab train` | {commands_wall:.1f} | {_spread(command_overheads)} |

The sweep took **{ratio:.2f}x** the commands' wall time (target: at most 0.35x). Overhead is a
trial's wall time minus its training seconds (run.json's `wall_seconds`, which includes the first
epoch's tracing): a command pays Python and TensorFlow start-up, data loading, the model build and
the initial files every time; a sweep trial in a warm worker only the last three.
"""
    print(text)
    if "--write" in sys.argv:
        write_section(HEADING, text)


def _spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
