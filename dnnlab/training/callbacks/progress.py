"""Training progress on stderr: a live rich bar on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any

import keras

from dnnlab.console import stderr_console


def format_metrics(logs: dict[str, Any]) -> str:
    return "  ".join(f"{key} {value:.4g}" for key, value in logs.items() if is_number(value))


def is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


class PlainProgress(keras.callbacks.Callback):
    """One line per finished epoch: for CI logs and pipes."""

    def __init__(self, epochs: int, stream=None):
        super().__init__()
        self.epochs = epochs
        self.stream = stream or sys.stderr

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        print(
            f"epoch {epoch + 1}/{self.epochs}  {format_metrics(logs or {})}  ({seconds:.1f}s)",
            file=self.stream,
            flush=True,
        )


class RichProgress(keras.callbacks.Callback):
    """Two live bars, the run and the current epoch, with the latest metrics and ETA."""

    def __init__(self, epochs: int, steps_per_epoch: int, initial_epoch: int, steps_per_call: int = 1):
        super().__init__()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.steps_per_call = steps_per_call  # Keras's `batch` counts compiled calls
        self.console = stderr_console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=False,
        )
        self.run_task = self.progress.add_task("run", total=epochs, completed=initial_epoch, metrics="")
        self.epoch_task = self.progress.add_task("epoch", total=steps_per_epoch, metrics="")

    def on_train_begin(self, logs=None):
        self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.epoch_task, total=self.steps_per_epoch, metrics="")
        self.progress.update(self.epoch_task, description=f"epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(
            self.epoch_task,
            completed=min((batch + 1) * self.steps_per_call, self.steps_per_epoch),
            metrics=format_metrics(logs or {}),
        )

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.epoch_task, completed=self.steps_per_epoch)
        self.progress.update(self.run_task, advance=1, metrics=format_metrics(logs or {}))

    def on_train_end(self, logs=None):
        self.progress.stop()


def progress_callback(
    epochs: int, steps_per_epoch: int, initial_epoch: int, steps_per_call: int = 1
) -> keras.callbacks.Callback:
    """Rich bars on a terminal; plain lines when stderr is not one (CI, pipes)."""
    if sys.stderr.isatty():
        return RichProgress(epochs, steps_per_epoch, initial_epoch, steps_per_call)
    return PlainProgress(epochs)
