"""Per-layer statistics during training: layers.csv and TensorBoard summaries."""

from __future__ import annotations

from typing import Any

from dnnlab import runtime
from dnnlab.files.atomic import atomic_write_text
from dnnlab.rundir.directory import RunDir
from dnnlab.spec.models import Spec

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.model.probe import Prober, probe_batch  # noqa: E402
from dnnlab.rundir.layers_csv import STATISTICS, layers_csv_text, read_layers_rows  # noqa: E402


class DiagnosticsCallback(keras.callbacks.Callback):
    """Measures at initialization and every `every` epochs or steps; appends to layers.csv
    (rewritten atomically) and writes TensorBoard scalars and histograms.

    It needs no state of its own beyond the file: on resume, rows measured after the committed
    step (those of the epoch being replayed) are dropped, and an initial measurement is taken only
    when training starts from step 0.
    """

    def __init__(self, run: RunDir, prober: Prober, settings: Any, committed_step: int):
        super().__init__()
        self.run = run
        self.prober = prober
        self.every = settings.every
        self.unit = settings.unit
        self.histograms = settings.histograms
        self.rows = [r for r in read_layers_rows(run.layers_csv) if r["step"] <= committed_step]
        self.writer = None
        self._epoch = 0

    def _measure(self, epoch: int) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if self.rows and self.rows[-1]["step"] == step:
            return
        rows, raw = self.prober.measure()
        self.rows += [{"epoch": epoch, "step": step, **row} for row in rows]
        atomic_write_text(self.run.layers_csv, layers_csv_text(self.rows))
        self._summaries(step, rows, raw)

    def _summaries(self, step: int, rows: list[dict[str, Any]], raw: dict[str, list]) -> None:
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.run.tensorboard / "diagnostics"))
        with self.writer.as_default(step=step):
            for i, row in enumerate(rows):
                prefix = f"layers/{row['depth']:02d}_{row['layer']}"
                for key in STATISTICS:
                    if row[key] is not None:
                        tf.summary.scalar(f"{prefix}/{key}", row[key])
                if self.histograms:
                    tf.summary.histogram(f"{prefix}/activation", raw["activations"][i])
                    tf.summary.histogram(f"{prefix}/kernel_gradient", raw["gradients"][i])
        self.writer.flush()

    def on_train_begin(self, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 0:
            self._measure(0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.unit == "step":
            step = int(self.model.optimizer.iterations.numpy())
            if step // self.every > (self.rows[-1]["step"] if self.rows else 0) // self.every:
                self._measure(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self.unit == "epoch" and (epoch + 1) % self.every == 0:
            self._measure(epoch)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def training_callback(run: RunDir, spec: Spec, model: keras.Model, dataset: Any, committed_step: int):
    """The callback `train` adds when the spec sets training.diagnostics."""
    settings = spec.training.diagnostics
    x, y = probe_batch(dataset.x_train, dataset.y_train, settings.probe_size, spec.seed)
    return DiagnosticsCallback(run, Prober(model, spec.training.loss, x, y), settings, committed_step)
