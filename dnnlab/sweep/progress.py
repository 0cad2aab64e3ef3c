"""A sweep's progress on stderr: trials done / running / left, the ETA and the best so far.

On a terminal a rich status line is redrawn in place; elsewhere (CI, pipes) one plain line is
printed per finished trial. Lines are never wrapped: a terminal crops them, a pipe takes them whole.
"""

from __future__ import annotations

import sys
import time

from dnnlab.sweep.record import SweepRecord
from dnnlab.sweep.trials import Trial


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class SweepProgress:
    """`quiet`: nothing at all (the CLI's --quiet); the result still goes to sweep.json.
    `to_run` None: a search, whose trials are not known ahead (no count left, no ETA)."""

    def __init__(self, record: SweepRecord, to_run: int | None, stream=None, quiet: bool = False):
        self.record = record
        self.quiet = quiet
        self.to_run = to_run
        self.finished_here = 0
        self.started_at = time.monotonic()
        self.stream = stream or sys.stderr
        self.live = None
        if self.stream.isatty() and not quiet:
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False, emoji=False)
            self.live = self.console.status(self.summary())
            self.live.start()

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.console.print(text, soft_wrap=True, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def summary(self) -> str:
        counts = self.record.counts()
        running = counts.get("running", 0)
        done = len(self.record.trials) - running - counts.get("pending", 0)
        parts = [f"{done}/{len(self.record.trials)} done", f"{running} running"]
        if self.to_run is None:
            configs = self.record.configs
            parts.append(f"{len(configs)}/{(self.record.search or {}).get('trials') or '?'} configurations")
        else:
            parts.append(f"{max(self.to_run - self.finished_here - running, 0)} left")
        if self.finished_here and self.to_run is not None:
            per_trial = (time.monotonic() - self.started_at) / self.finished_here
            parts.append(f"eta {_duration(per_trial * (self.to_run - self.finished_here))}")
        best = self.best()
        if best is not None:
            parts.append(f"best {best.best['metric']} {best.best['value']:.4g} ({best.run})")
        return "  ".join(parts)

    def best(self) -> Trial | None:
        scored = [t for t in self.record.trials if t.best and t.best.get("value") is not None]
        if not scored:
            return None
        from dnnlab.rundir.better import metric_mode

        sign = 1 if metric_mode(scored[0].best["metric"]) == "min" else -1
        return min(scored, key=lambda t: sign * t.best["value"])

    def started(self, trial: Trial) -> None:
        self._refresh()

    def finished(self, trial: Trial) -> None:
        self.finished_here += 1
        best = trial.best or {}
        value = f"{best['metric']} {best['value']:.4g}" if best.get("value") is not None else "no best"
        error = f"  {trial.error}" if trial.error else ""
        self.note(f"{trial.run}: {trial.status} after {trial.epochs_done} epoch(s), {value}{error}")
        if self.live is None and not self.quiet:
            print(f"  [{self.summary()}]", file=self.stream, flush=True)
        self._refresh()

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.summary())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
