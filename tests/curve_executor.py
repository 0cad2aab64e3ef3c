"""An executor that trains nothing, so tests drive the real sweep driver in milliseconds a trial:
each trial's run gets the metrics.csv rows of a made-up learning curve."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from dnnlab.sweep import executors


class CurveExecutor:
    """`run` of an executor module, one worker: takes the feed's trials one at a time and appends
    to each run's metrics.csv the rows of the epochs it is given (the trial's `epochs`, else
    `default_epochs`), as a worker resuming it would, `loss(params, epoch)` being its val_loss.
    `trained` lists the epochs trained per run folder (a test sees an epoch trained twice);
    `order` the (run folder, epochs given) as handed out. `marks_runs`: each run also gets a
    run.json, as a run dnnlab made (what a sweep may remove)."""

    def __init__(self, loss: Callable[[dict, int], float], default_epochs: int, marks_runs: bool = False):
        self.loss = loss
        self.default_epochs = default_epochs
        self.marks_runs = marks_runs
        self.trained: dict[str, list[int]] = {}
        self.order: list[tuple[str, int]] = []

    def __call__(self, sweep_dir, trials, jobs, threads, address, on_trial_event):
        feed = executors.as_feed(trials)
        while feed.ready():
            trial = feed.next()
            if trial is None:
                break
            on_trial_event("started", trial, None)
            on_trial_event("finished", trial, self.train(Path(sweep_dir), trial))

    def train(self, sweep_dir: Path, trial: dict) -> dict:
        run = sweep_dir / trial["run"]
        run.mkdir(exist_ok=True)
        if self.marks_runs:
            (run / "run.json").write_text('{"status": "completed"}', encoding="utf-8")
        path = run / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        epochs = trial.get("epochs") or self.default_epochs
        self.order.append((str(run), epochs))
        for epoch in range(len(rows), epochs):
            rows.append({"epoch": epoch, "loss": 1.0, "val_loss": self.loss(trial["params"], epoch)})
            self.trained.setdefault(str(run), []).append(epoch)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["epoch", "loss", "val_loss"])
            writer.writeheader()
            writer.writerows(rows)
        losses = [float(row["val_loss"]) for row in rows]
        return {
            "status": "completed",
            "best": {"metric": "val_loss", "value": min(losses), "epoch": losses.index(min(losses))},
            "epochs_done": len(rows),
            "train_seconds": 0.0,
            "wall_seconds": 0.0,
            "error": None,
        }
