"""`dnnlab sweep`: families of runs (grid, random draws, seeds, a search) on warm workers, resumable.

`axes` parses the `-g` grammar, `definition` the sweep file, `trials` expands and validates the
trials, `record` keeps the sweep directory, `worker` runs trials (one, or a local pool of warm
processes), `ray_executor` runs them as tasks of a Ray cluster, `executors` names where trials
run, `search` drives a search that learns (Optuna, imported only there) with `rungs` deciding
what pauses and what is promoted, and `runner` ties them together.
"""

from dnnlab.sweep.definition import Sweep, build_sweep
from dnnlab.sweep.runner import SweepResult, resume_sweep, run_sweep

__all__ = ["Sweep", "SweepResult", "build_sweep", "resume_sweep", "run_sweep"]
