"""Per-layer statistics of a dense network and the notes' verdicts about them.

The notes' unstable-gradient phenomena (vanishing and exploding gradients, saturation, dying
ReLUs, SELU's self-normalization) show in a handful of numbers per Dense layer, measured on one
fixed probe batch of the training split:

- the kernel's gradient norm, its weight norm, and the update-to-weight ratio since the last
  measurement;
- the mean and standard deviation of the activation that follows the layer (wherever batch norm
  sits), the fraction of saturated values (sigmoid, tanh, softsign: derivative below 5% of its
  maximum) and of dead units (ReLU: zero on every probe row).

How the probe is run: batch norm in training mode (its batch statistics are what the notes'
deep-BN phenomenon is about), every random layer (dropout, alpha dropout, RReLU) in inference
mode, so a measurement is a function of the weights and the probe alone. The moving averages
batch norm updates in training mode are put back afterwards: measuring never changes a run.

`measure` is used by `dnnlab diagnose` on a spec (at initialization, and after K steps) and by
`DiagnosticsCallback` during training, which writes layers.csv and TensorBoard summaries.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab import runtime
from dnnlab.errors import DnnlabError, RunDirError
from dnnlab.runs import RunDir, atomic_write_bytes, atomic_write_text, check_output_folder
from dnnlab.spec import Spec, check_spec, read_run_spec

runtime.quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dnnlab.layers import RReLU  # noqa: E402

# Columns of layers.csv, in order; the statistics are also the keys of `diagnose --json`'s layers.
STATISTICS = (
    "gradient_norm",
    "weight_norm",
    "update_ratio",
    "activation_mean",
    "activation_std",
    "saturated_fraction",
    "dead_fraction",
)
COLUMNS = ("epoch", "step", "depth", "layer", "activation", "units", *STATISTICS)

SATURATING = ("sigmoid", "tanh", "softsign")
DEAD_CAN_BE_ZERO = ("relu",)  # leaky variants, PReLU and ELU are never exactly zero
SATURATION_LEVEL = 0.05  # derivative below 5% of its maximum
VANISHING_RATIO = 1e-3
EXPLODING_RATIO = 1e2
EXPLODING_NORM = 1e3
SELU_MEAN = 0.1
SELU_STD = (0.8, 1.25)


# --- the probe batch -----------------------------------------------------------------------


def probe_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Indices of the probe batch: `size` training rows drawn without replacement from `seed`,
    sorted, so a spec's measurement is the same in every process."""
    rng = np.random.default_rng([seed, 0x9E0B])
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def probe_batch(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = probe_rows(len(x), size, seed)
    return x[rows], y[rows]


# --- the layers measured -------------------------------------------------------------------


def activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a layer applies ('relu', 'sigmoid', ...); None for other layers."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(layer, keras.layers.PReLU):
        return "prelu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    if isinstance(layer, RReLU):
        return "rrelu"
    if isinstance(layer, keras.layers.Dense | keras.layers.Activation):
        return getattr(layer.activation, "__name__", "linear")
    return None


@dataclass(frozen=True)
class Block:
    """A Dense layer and the layer whose output is its activation (itself when inline)."""

    depth: int  # 1-based among the Dense layers
    dense: int  # index in model.layers
    output: int  # index in model.layers of the activation's output
    activation: str


def blocks(model: keras.Model) -> list[Block]:
    """Every Dense layer of a Sequential model in depth order, with its activation: the one inside
    the layer, else the first activation layer before the next Dense (batch norm before or after)."""
    layers = model.layers
    found: list[Block] = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Dense):
            continue
        output, name = index, activation_name(layer)
        if name == "linear":
            for later in range(index + 1, len(layers)):
                if isinstance(layers[later], keras.layers.Dense):
                    break
                later_name = activation_name(layers[later])
                if later_name is not None:
                    output, name = later, later_name
                    break
        found.append(Block(len(found) + 1, index, output, name))
    return found


def _training_flag(layer: keras.layers.Layer) -> bool:
    """Batch norm in training mode (batch statistics); random layers and the rest in inference."""
    return isinstance(layer, keras.layers.BatchNormalization)


# --- statistics of one activation ----------------------------------------------------------


def saturated_fraction(values: np.ndarray, activation: str) -> float | None:
    """Share of activation values whose derivative is below 5% of its maximum, computed from the
    output alone: sigmoid s(1-s) (max 1/4), tanh 1-t^2 (max 1), softsign (1-|y|)^2 (max 1)."""
    if activation == "sigmoid":
        derivative = values * (1 - values) / 0.25
    elif activation == "tanh":
        derivative = 1 - values**2
    elif activation == "softsign":
        derivative = (1 - np.abs(values)) ** 2
    else:
        return None
    return float(np.mean(derivative < SATURATION_LEVEL))


def dead_fraction(values: np.ndarray, activation: str) -> float | None:
    """Share of units that output zero for every probe row (ReLU)."""
    if activation not in DEAD_CAN_BE_ZERO:
        return None
    return float(np.mean(np.all(values == 0, axis=0)))


# --- measuring -----------------------------------------------------------------------------


class Prober:
    """Measures a model's per-layer statistics on one probe batch (one compiled function)."""

    def __init__(self, model: keras.Model, loss: str, x: np.ndarray, y: np.ndarray):
        self.model = model
        self.blocks = blocks(model)
        if not self.blocks:
            raise DnnlabError("diagnose: the model has no Dense layer to measure")
        self.x = tf.constant(x)
        self.y = tf.constant(y)
        self.loss = keras.losses.get(loss)
        self.kernels = [model.layers[b.dense].kernel for b in self.blocks]
        self.batch_norm_state = [
            v
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in layer.non_trainable_variables
        ]
        self.previous: list[np.ndarray] | None = None
        self._forward = tf.function(self._gradients_and_activations, reduce_retracing=True)

    def _gradients_and_activations(self, x, y):
        wanted = [b.output for b in self.blocks]
        activations = []
        with tf.GradientTape() as tape:
            h = x
            for index, layer in enumerate(self.model.layers):
                h = layer(h, training=_training_flag(layer))
                if index in wanted:
                    activations.append(h)
            loss = tf.reduce_mean(self.loss(y, h))
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        gradients = tape.gradient(loss, self.kernels)
        return gradients, [activations[wanted.index(b.output)] for b in self.blocks]

    def measure(self) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
        """One row per Dense layer (depth order), and the raw values for histograms."""
        saved = [v.numpy() for v in self.batch_norm_state]
        gradients, activations = self._forward(self.x, self.y)
        for variable, value in zip(self.batch_norm_state, saved):
            variable.assign(value)
        kernels = [k.numpy() for k in self.kernels]
        rows = []
        for i, block in enumerate(self.blocks):
            grad = gradients[i].numpy()
            act = activations[i].numpy()
            weight_norm = float(np.linalg.norm(kernels[i]))
            update = None
            if self.previous is not None:
                before = float(np.linalg.norm(self.previous[i]))
                update = float(np.linalg.norm(kernels[i] - self.previous[i])) / before if before else None
            rows.append(
                {
                    "depth": block.depth,
                    "layer": self.model.layers[block.dense].name,
                    "activation": block.activation,
                    "units": int(kernels[i].shape[-1]),
                    "gradient_norm": float(np.linalg.norm(grad)),
                    "weight_norm": weight_norm,
                    "update_ratio": update,
                    "activation_mean": float(np.mean(act)),
                    "activation_std": float(np.std(act)),
                    "saturated_fraction": saturated_fraction(act, block.activation),
                    "dead_fraction": dead_fraction(act, block.activation),
                }
            )
        self.previous = kernels
        raw = {
            "activations": [a.numpy() for a in activations],
            "gradients": [g.numpy() for g in gradients],
        }
        return rows, raw


# --- verdicts ------------------------------------------------------------------------------


def _g(value: float) -> str:
    return f"{value:.2g}"


def verdicts(rows: list[dict[str, Any]], spec: Spec | None = None) -> list[dict[str, Any]]:
    """The notes' verdicts on one measurement (rows in depth order): each names the layers, the
    evidence and the remedy."""
    found: list[dict[str, Any]] = []
    grads = [r["gradient_norm"] for r in rows]
    names = [r["layer"] for r in rows]
    if len(rows) >= 2 and all(math.isfinite(g) for g in grads):
        first, last = grads[0], grads[-1]
        per_layer = (last / first) ** (1 / (len(rows) - 1)) if first > 0 and last > 0 else math.inf
        if last > 0 and first < VANISHING_RATIO * last:
            low = [n for n, g in zip(names, grads) if g < VANISHING_RATIO * last]
            found.append(
                {
                    "kind": "vanishing_gradients",
                    "layers": low,
                    "message": (
                        f"gradient norm shrinks with depth: {names[0]} {_g(first)} against "
                        f"{names[-1]} {_g(last)} (about {per_layer:.1f}x smaller per layer); "
                        f"{', '.join(low)}, with less than {VANISHING_RATIO:g} of {names[-1]}'s "
                        "gradient, barely learn. "
                        "Remedy (the notes): ReLU with He initialization, batch norm, or a "
                        "non-saturating activation"
                    ),
                }
            )
        large = [n for n, g in zip(names, grads) if g > EXPLODING_NORM]
        grown = [n for n, g in zip(names, grads) if last > 0 and g > EXPLODING_RATIO * last]
        if (last > 0 and first > EXPLODING_RATIO * last) or large:
            evidence = []
            if grown:
                evidence.append(
                    f"gradient norm grows towards the input: {names[0]} {_g(first)} against "
                    f"{names[-1]} {_g(last)}, above {EXPLODING_RATIO:g}x in {', '.join(grown)}"
                )
            if large:
                evidence.append(f"gradient norm above {EXPLODING_NORM:g} in {', '.join(large)}")
            found.append(
                {
                    "kind": "exploding_gradients",
                    "layers": [n for n in names if n in grown or n in large],
                    "message": "; ".join(evidence)
                    + ". Remedy (the notes): gradient clipping (training.optimizer.clipnorm), "
                    "a lower learning rate, the initializer paired with the activation, or "
                    "fewer batch-norm layers in a deep stack",
                }
            )
    elif not all(math.isfinite(g) for g in grads):
        bad = [n for n, g in zip(names, grads) if not math.isfinite(g)]
        found.append(
            {
                "kind": "exploding_gradients",
                "layers": bad,
                "message": f"gradient norm not finite in {', '.join(bad)}. Remedy (the notes): "
                "gradient clipping and a lower learning rate",
            }
        )
    found += _majority_verdict(
        rows,
        "saturated_fraction",
        "saturation",
        "more than half the activations saturated ({evidence}): their derivative is near zero, so "
        "little gradient flows back. Remedy (the notes): Glorot initialization, a non-saturating "
        "activation (ReLU family, ELU, SELU), or batch norm",
    )
    found += _majority_verdict(
        rows,
        "dead_fraction",
        "dead_units",
        "more than half the units output zero for every probe row ({evidence}). Remedy (the "
        "notes): leaky ReLU, ELU or SELU, He initialization, a lower learning rate",
    )
    found += _selu_verdicts(rows, spec)
    return found


def _majority_verdict(
    rows: list[dict[str, Any]], fraction: str, kind: str, message: str
) -> list[dict[str, Any]]:
    """One verdict naming the layers where more than half the units are `fraction` (saturated,
    dead); `message` gets the per-layer evidence as {evidence}."""
    hit = [r for r in rows if (r[fraction] or 0) > 0.5]
    if not hit:
        return []
    evidence = ", ".join(f"{r['layer']} {r[fraction]:.0%}" for r in hit)
    return [{"kind": kind, "layers": [r["layer"] for r in hit], "message": message.format(evidence=evidence)}]


def _selu_verdicts(rows: list[dict[str, Any]], spec: Spec | None) -> list[dict[str, Any]]:
    hidden = rows[:-1]  # the output layer is not part of the stack
    if len(hidden) < 2 or any(r["activation"] != "selu" for r in hidden):
        return []
    low, high = SELU_STD
    out = [
        r
        for r in hidden
        if not (abs(r["activation_mean"]) <= SELU_MEAN and low <= r["activation_std"] <= high)
    ]
    band = f"mean within ±{SELU_MEAN:g} and std within [{low:g}, {high:g}]"
    if not out:
        worst = max(hidden, key=lambda r: abs(r["activation_std"] - 1))
        return [
            {
                "kind": "self_normalizing",
                "layers": [r["layer"] for r in hidden],
                "message": f"every one of {len(hidden)} SELU layers keeps its activations at {band} "
                f"(furthest: {worst['layer']} mean {worst['activation_mean']:.2f}, std "
                f"{worst['activation_std']:.2f})",
            }
        ]
    evidence = ", ".join(
        f"{r['layer']} mean {r['activation_mean']:.2f} std {r['activation_std']:.2f}" for r in out[:3]
    )
    more = f" and {len(out) - 3} more" if len(out) > 3 else ""
    conditions = _violated_selu_conditions(spec)
    cause = (
        "conditions of the notes it violates: " + "; ".join(conditions)
        if conditions
        else "the spec meets the notes' conditions, so training moved it (try a lower learning rate)"
    )
    return [
        {
            "kind": "self_normalization_broken",
            "layers": [r["layer"] for r in out],
            "message": f"SELU activations leave the band {band}: {evidence}{more}. {cause}",
            "conditions": conditions,
        }
    ]


def _violated_selu_conditions(spec: Spec | None) -> list[str]:
    """The notes' conditions for self-normalization that the spec breaks (lecun_normal, standardized
    input, a plain sequential stack, alpha dropout, no l1/l2 or max-norm, no batch norm)."""
    if spec is None:
        return []
    from dnnlab.spec.checks import check_selu_self_normalization

    return [f"{finding.key}: {finding.message}" for finding in check_selu_self_normalization(spec)]


# --- `dnnlab diagnose` ---------------------------------------------------------------------


@dataclass
class Measurement:
    epoch: int  # 0-based epoch in which it was taken (0 at initialization)
    step: int  # optimizer steps done
    rows: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return "at initialization" if self.step == 0 else f"after {self.step} steps"


@dataclass
class Diagnosis:
    name: str
    source: str  # "spec" or "run"
    measurements: list[Measurement]
    verdicts: list[dict[str, Any]]
    warnings: list[Any] = field(default_factory=list)  # `check`'s findings for a spec

    def to_dict(self) -> dict[str, Any]:
        last = self.measurements[-1]
        return {
            "name": self.name,
            "source": self.source,
            "epoch": last.epoch,
            "step": last.step,
            "layers": [_named(row) for row in last.rows],
            "initial_layers": [_named(row) for row in self.measurements[0].rows],
            "verdicts": self.verdicts,
        }


def _named(row: dict[str, Any]) -> dict[str, Any]:
    """A row of layers.csv as `diagnose --json` gives it: the layer's name under `name`."""
    return {"name": row["layer"], **{k: v for k, v in row.items() if k != "layer"}}


def all_verdicts(measurements: list[Measurement], spec: Spec | None) -> list[dict[str, Any]]:
    """Verdicts at initialization and, when training happened, at the last measurement; each
    says when (`at`)."""
    chosen = [measurements[0]] if len(measurements) == 1 else [measurements[0], measurements[-1]]
    return [{**verdict, "at": m.label, "step": m.step} for m in chosen for verdict in verdicts(m.rows, spec)]


def diagnose(target: Path, overrides: list[str] | None = None, steps: int = 0) -> Diagnosis:
    """Measure a spec's model at initialization (and after `steps` training steps), writing
    nothing; or read a run directory's layers.csv."""
    target = Path(target)
    if target.is_dir():
        if overrides or steps:
            raise DnnlabError("diagnose RUN_DIR reads layers.csv; -o and --steps apply to a spec")
        return diagnose_run(target)
    if not target.exists():
        raise DnnlabError(f"{target}: no such spec file or run directory")
    checked = check_spec(target, overrides)
    spec = checked.spec
    from dnnlab import train

    prepared = train.prepare(spec, checked.info.input_shape, state=None)
    dataset, model = prepared.dataset, prepared.model
    size = spec.training.diagnostics.probe_size if spec.training.diagnostics else 256
    x, y = probe_batch(dataset.x_train, dataset.y_train, size, spec.seed)
    prober = Prober(model, spec.training.loss, x, y)
    rows, _ = prober.measure()
    measurements = [Measurement(0, 0, rows)]
    if steps:
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        data = train.make_train_dataset(
            dataset.x_train, dataset.y_train, spec.training.batch_size, spec.seed, epoch
        )
        model.fit(data.repeat().take(steps), epochs=1, verbose=0, shuffle=False)
        rows, _ = prober.measure()
        done = int(model.optimizer.iterations.numpy())
        measurements.append(Measurement(done // train.steps_per_epoch(spec, dataset), done, rows))
    return Diagnosis(spec.name, "spec", measurements, all_verdicts(measurements, spec), checked.warnings)


def diagnose_run(path: Path) -> Diagnosis:
    run = RunDir.open(path)
    spec, _ = read_run_spec(run.config)
    if not run.layers_csv.exists():
        raise RunDirError(
            f"{run.path}: no layers.csv (trained without training.diagnostics); train with "
            "-o 'training.diagnostics={every: 1}', or diagnose its config.yaml"
        )
    measurements = read_layers_csv(run.layers_csv)
    if not measurements:
        raise RunDirError(f"{run.layers_csv}: holds no measurement yet")
    return Diagnosis(spec.name, "run", measurements, all_verdicts(measurements, spec))


# --- layers.csv ----------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):  # the shortest decimal of the float32 TensorFlow computed
        return str(np.float32(value)) if math.isfinite(value) else str(value)
    return value


def layers_csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    return buffer.getvalue()


def read_layers_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = []
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key in ("epoch", "step", "depth", "units"):
                    row[key] = int(value)
                elif key in ("layer", "activation"):
                    row[key] = value
                else:
                    row[key] = float(value) if value not in ("", None) else None
            rows.append(row)
        return rows


def read_layers_csv(path: Path) -> list[Measurement]:
    """The measurements of a layers.csv, in the order taken (rows grouped by step)."""
    measurements: dict[int, Measurement] = {}
    for row in read_layers_rows(path):
        m = measurements.setdefault(row["step"], Measurement(row["epoch"], row["step"], []))
        m.rows.append({k: v for k, v in row.items() if k not in ("epoch", "step")})
    for m in measurements.values():
        m.rows.sort(key=lambda r: r["depth"])
    return list(measurements.values())


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


# --- the figure ----------------------------------------------------------------------------


def plot_diagnosis(diagnosis: Diagnosis, path: Path) -> Path:
    """Glorot & Bengio's (2010) figure for this model: each layer's activation mean with a band of
    one standard deviation, and each layer's kernel gradient norm (log scale), at initialization
    and at the last measurement."""
    path = Path(path)
    check_output_folder(path, "--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = diagnosis.measurements[:1] + diagnosis.measurements[1:][-1:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for measurement, color in zip(chosen, ("tab:blue", "tab:orange")):
        rows = measurement.rows
        depth = [r["depth"] for r in rows]
        mean = np.array([r["activation_mean"] for r in rows])
        std = np.array([r["activation_std"] for r in rows])
        left.plot(depth, mean, "o-", color=color, label=f"mean {measurement.label}")
        band = f"± std {measurement.label}"
        left.fill_between(depth, mean - std, mean + std, color=color, alpha=0.2, label=band)
        right.semilogy(depth, [r["gradient_norm"] for r in rows], "o-", color=color, label=measurement.label)
    left.set(title="activations per layer", xlabel="dense layer (1 = nearest the input)", ylabel="activation")
    right.set(title="kernel gradient norm per layer", xlabel="dense layer (1 = nearest the input)")
    for axis in (left, right):
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    fig.suptitle(f"{diagnosis.name}: probe batch of the training split")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png", dpi=100)  # as savefig(path)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())  # never half a file, never through a planted link
    return path
