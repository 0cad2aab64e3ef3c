"""Monte Carlo dropout: sampling a model with dropout on, and the scores of its mean.

MC dropout (Gal & Ghahramani, 2016) keeps dropout active at inference, predicts many times and
averages; the spread of the samples measures how uncertain the model is. Only the dropout-family
layers (``keras.layers.Dropout``, ``keras.layers.AlphaDropout`` and their subclasses) are
stochastic here: batch norm and every other layer run in inference mode, so no weight or moving
statistic changes, and any trained dropout model can be used as it is.

Why it is fast: the layers before the first dropout layer run once per batch of instances; the
rest runs on that output tiled ``samples`` times in one graph call, the dropout masks come from
seeded stateless random ops, and the mean, variance and entropy terms are reduced inside the call,
so memory does not grow with instances x samples.

Typical use (what ``dnnlab mc-predict`` does)::

    result = mc.sample(model, x, samples=100, seed=42)
    mc.save(result, "mc.npz")                  # or "mc.csv"
    scores = mc.scores(model, x, y, result)   # {"deterministic": {...}, "mc": {...}}
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dnnlab.errors import PredictError
from dnnlab.files.array_csv import arrays_csv_text
from dnnlab.files.atomic import atomic_write_bytes, npz_bytes
from dnnlab.inference.calibration import class_probabilities, classification_metrics
from dnnlab.inference.options import DEFAULT_SAMPLE, SAMPLE_CHOICES
from dnnlab.model.keras_private import producer
from dnnlab.model.layers import SeededAlphaDropout, SeededDropout, alpha_dropout_affine, concrete_noise_shape

CLASSIFICATION = "classification"
REGRESSION = "regression"
_MASK_LEVELS = 2**16

# Rows (instances x samples) per graph call. Large enough that per-call overhead vanishes, small
# enough that one call's activations stay in cache-friendly tens of megabytes; measured in
# benchmarks/mc_predict.py.
ROWS_PER_CALL = 25_000

# Keeps the Gaussian NLL finite when a predicted variance is zero (e.g. dropout rate 0).
_VARIANCE_FLOOR = 1e-12


@dataclass(frozen=True)
class MCResult:
    """Per-instance MC dropout predictions; arrays have one row per instance.

    ``mean`` and ``std`` (population std over samples) have the model's output shape. For
    classification, ``predicted`` is the class index of ``mean``, ``entropy`` the predictive
    entropy of ``mean`` and ``mutual_information`` that entropy minus the mean entropy of the
    samples (both in nats); for regression these are None.
    """

    task: str
    samples: int
    seed: int
    mean: np.ndarray
    std: np.ndarray
    predicted: np.ndarray | None = None
    entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The named arrays that ``save`` writes, in file order."""
        names = ["mean", "std"]
        if self.task == CLASSIFICATION:
            names += ["predicted", "entropy", "mutual_information"]
        return {name: getattr(self, name) for name in names}


def sample(
    model: keras.Model,
    x,
    samples: int = 100,
    batch_size: int | None = None,
    seed: int | None = None,
    task: str | None = None,
    sample: str = DEFAULT_SAMPLE,
) -> MCResult:
    """Run ``x`` through the model ``samples`` times with dropout on; the per-instance statistics.

    ``batch_size`` is the number of instances per graph call (None: chosen so a call holds about
    ``ROWS_PER_CALL`` rows). The same ``seed`` and ``batch_size`` give bit-identical results;
    ``seed=None`` draws one, recorded in the result. ``task`` is "classification" or
    "regression"; None infers it from the output layer (softmax, or a one-unit sigmoid, is
    classification). ``sample`` chooses which dropout layers sample (``SAMPLE_CHOICES``: "all",
    "hidden": all but those before the first dense layer, "last": the last one only); the
    others act as in inference (identity).
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise PredictError(
            f"samples must be a positive integer (the number of dropout passes); "
            f"received: samples={samples!r}"
        )
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise PredictError(
            f"batch_size must be a positive integer or None (automatic); received: batch_size={batch_size!r}"
        )
    seed = _resolve_seed(seed)
    sampler = _sampler_for(model, task, sample)
    x = _as_batch(model, x)

    instances_per_call = batch_size or max(1, ROWS_PER_CALL // samples)
    instances_per_call = min(instances_per_call, len(x))
    samples_per_call = min(samples, max(1, ROWS_PER_CALL // instances_per_call))

    columns = None  # filled batch by batch: memory is the result plus one call's working set
    for batch_index, start in enumerate(range(0, len(x), instances_per_call)):
        stop = start + instances_per_call
        prefix_output = sampler.prefix(tf.constant(x[start:stop]))
        moments = _Moments()
        for chunk_index, done in enumerate(range(0, samples, samples_per_call)):
            count = min(samples_per_call, samples - done)
            seeds = _call_seeds(seed, batch_index, chunk_index, sampler.dropout_count)
            moments.add(count, *sampler.sample(prefix_output, tf.constant(count), seeds))
        part = moments.finish(sampler.task)
        if columns is None:
            columns = {name: np.empty((len(x),) + a.shape[1:], a.dtype) for name, a in part.items()}
        for name, array in part.items():
            columns[name][start:stop] = array
    return MCResult(task=sampler.task, samples=samples, seed=seed, **columns)


def deterministic_outputs(model: keras.Model, x, batch_size: int = 4096) -> np.ndarray:
    """One pass in inference mode (dropout off, batch norm on moving statistics).

    Runs as a graph, like ``model.predict``: eager calls can differ from it in the last bit
    (graph-mode op fusion), and a dropout rate of 0 must give exactly this prediction.
    """
    x = _as_batch(model, x)
    infer = _INFERENCE.get(model)
    if infer is None:
        # A weak reference: a cached value that held the model would keep its key alive forever.
        model_ref = weakref.ref(model)
        infer = tf.function(lambda batch: model_ref()(batch, training=False), reduce_retracing=True)
        _INFERENCE[model] = infer
    outputs = [
        infer(tf.constant(x[start : start + batch_size])).numpy() for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs)


def save(result: MCResult, path: str | os.PathLike, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``result`` to ``.npz`` (one array per name) or ``.csv`` (one row per instance).

    ``extra``: more named arrays for an ``.npz`` (the labels and the baselines that `dnnlab
    report --mc` draws reliability diagrams from). The file is written atomically and its bytes
    depend only on its content (no timestamps), so the same seed gives the same file.
    """
    path = Path(path)
    if path.suffix not in (".npz", ".csv"):
        raise PredictError(
            f"cannot save MC predictions to {str(path)!r}: expected a file name ending in "
            f".npz or .csv; received suffix {path.suffix or '(none)'!r}"
        )
    if path.suffix == ".npz":
        data = npz_bytes({**result.arrays(), **(extra or {})})
    else:  # mean_j and std_j for every output, even a single one
        data = arrays_csv_text(result.arrays(), numbered=("mean", "std")).encode()
    atomic_write_bytes(path, data)  # a refused write: one line naming the file, exit 1
    return path


def scores(model: keras.Model, x, y, result: MCResult) -> dict[str, dict[str, float]]:
    """Scores of the deterministic outputs and of the MC mean on labels ``y``, side by side.

    Classification: accuracy, nll, brier, ece (`calibration.classification_metrics`). Regression:
    rmse and Gaussian nll; the MC nll uses the MC std of each instance, the deterministic nll
    (which has no std of its own) uses the residual std of the deterministic predictions on these
    labels, one per output: the maximum-likelihood constant std, hence an optimistic figure.
    """
    deterministic = deterministic_outputs(model, x)
    if result.task == CLASSIFICATION:
        return {
            "deterministic": classification_metrics(deterministic, y),
            "mc": classification_metrics(result.mean, y),
        }
    y = _regression_targets(y, result.mean)
    residual_std = np.sqrt(np.mean((np.float64(y) - deterministic) ** 2, axis=0))
    return {
        "deterministic": regression_metrics(deterministic, y, np.broadcast_to(residual_std, y.shape)),
        "mc": regression_metrics(result.mean, y, result.std),
    }


def regression_metrics(mean, y, std) -> dict[str, float]:
    """rmse over all outputs, and the Gaussian nll of ``y`` under N(mean, std**2), summed over
    outputs and averaged over instances (variances below 1e-12 count as 1e-12)."""
    mean = np.asarray(mean, dtype=np.float64)
    y = _regression_targets(y, mean)
    variance = np.maximum(np.asarray(std, dtype=np.float64) ** 2, _VARIANCE_FLOOR)
    nll = 0.5 * (np.log(2 * np.pi * variance) + (y - mean) ** 2 / variance)
    return {
        "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
        "nll": float(np.mean(nll.reshape(len(y), -1).sum(axis=1))),
    }


# --- the sampler: a model split at its first dropout layer ---------------------------------


class _Sampler:
    """Compiled MC dropout passes for one model.

    ``prefix`` runs the layers before the first dropout layer (inference mode); ``sample`` tiles
    its output, runs the remaining layers with only the dropout layers stochastic and returns
    the per-instance mean, centred sum of squares and (classification) summed sample entropy.
    """

    def __init__(self, model: keras.Model, task: str | None, sample: str = DEFAULT_SAMPLE):
        if not model.built:
            raise PredictError(
                "the model is not built; call it on data or give it an Input before MC prediction"
            )
        layers = _layer_chain(model)
        if not any(_is_dropout(layer) for layer in layers):
            raise PredictError(
                f"model {model.name!r} has no dropout layer, so MC dropout would repeat one "
                "deterministic prediction; expected at least one keras.layers.Dropout or "
                "AlphaDropout (e.g. model.dropout in the spec)"
            )
        sampled = _sampled_dropout(layers, sample)
        if not sampled:
            raise PredictError(
                f"sample={sample!r}: model {model.name!r} has no dropout layer after its first "
                "dense layer (its only dropout is on the input); use sample='all'"
            )
        first = min(sampled)
        self.task = task or infer_task(layers[-1])
        if self.task not in (CLASSIFICATION, REGRESSION):
            raise PredictError(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}; received: task={task!r}")
        self.prefix_layers = layers[:first]
        self.suffix = [
            (_dropout_fn(layer) if i in sampled else layer) for i, layer in enumerate(layers) if i >= first
        ]
        self.dropout_count = len(sampled)
        self.prefix = tf.function(self._prefix, reduce_retracing=True)
        self.sample = tf.function(self._sample, reduce_retracing=True)

    def _prefix(self, x):
        for layer in self.prefix_layers:
            x = layer(x, training=False)
        return x

    def _sample(self, h, samples, seeds):
        instances = tf.shape(h)[0]
        dropout_index = 0
        for step in self.suffix:
            if isinstance(step, keras.layers.Layer):
                h = step(h, training=False)
            else:
                # The first step is the first dropout layer: it repeats each row `samples` times.
                h = step(h, seeds[dropout_index], samples if dropout_index == 0 else 1)
                dropout_index += 1
        outputs = tf.reshape(h, tf.concat([[samples, instances], tf.shape(h)[1:]], 0))
        # A float64 mean of identical samples is exactly them (rate 0 == inference); the other
        # statistics need no such care and stay in the cheaper float32.
        mean = tf.reduce_mean(tf.cast(outputs, tf.float64), axis=0)
        centred_squares = tf.reduce_sum(tf.square(outputs - tf.cast(mean, outputs.dtype)), axis=0)
        if self.task == REGRESSION:
            entropy_sum = tf.zeros([instances], outputs.dtype)
        else:
            probabilities = _tf_class_probabilities(outputs)
            sample_entropy = -tf.reduce_sum(tf.math.xlogy(probabilities, probabilities), axis=-1)
            entropy_sum = tf.reduce_sum(sample_entropy, axis=0)
        return mean, tf.cast(centred_squares, tf.float64), tf.cast(entropy_sum, tf.float64)


# Compiling the graph functions costs far more than predicting one instance, so a sampler is
# kept per model for as long as the model lives.
_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sampler_for(model: keras.Model, task: str | None, sample: str = DEFAULT_SAMPLE) -> _Sampler:
    if sample not in SAMPLE_CHOICES:
        raise PredictError(f"sample must be one of {', '.join(SAMPLE_CHOICES)}; received: sample={sample!r}")
    cached = _SAMPLERS.setdefault(model, {})
    if (task, sample) not in cached:
        cached[task, sample] = _Sampler(model, task, sample)
    return cached[task, sample]


def _sampled_dropout(layers: list[keras.layers.Layer], sample: str) -> list[int]:
    """Indices in ``layers`` of the dropout layers that ``sample`` selects."""
    dropout = [i for i, layer in enumerate(layers) if _is_dropout(layer)]
    if sample == "last":
        return dropout[-1:]
    if sample == "hidden":
        # The first layer with a kernel (a dense layer): batch norm on the input does not count.
        first_kernel = next((i for i, layer in enumerate(layers) if hasattr(layer, "kernel")), len(layers))
        return [i for i in dropout if i > first_kernel]
    return dropout


def _layer_chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in call order, nested models expanded; refuses branching graphs."""
    if isinstance(model, keras.Sequential):
        layers = model.layers
    else:
        layers = _functional_chain(model)
    chain = []
    for layer in layers:
        chain.extend(_layer_chain(layer) if isinstance(layer, keras.Model) else [layer])
    return chain


def _functional_chain(model: keras.Model) -> list[keras.layers.Layer]:
    not_a_chain = PredictError(
        f"model {model.name!r} is not a chain of single-input layers; MC prediction supports "
        "keras.Sequential models and functional models where each layer feeds the next "
        "(the models dnnlab builds)"
    )
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise not_a_chain
    chain, tensor = [], outputs[0]
    while tensor is not inputs[0]:
        layer, input_tensors = producer(tensor)
        if len(input_tensors) != 1:
            raise not_a_chain
        chain.append(layer)
        tensor = input_tensors[0]
    return chain[::-1]


def _is_dropout(layer) -> bool:
    return isinstance(layer, (keras.layers.Dropout, keras.layers.AlphaDropout))


def _dropout_fn(layer):
    """A function (h, seed, samples) -> the rows of h repeated ``samples`` times (sample-major)
    with the layer's training-mode distribution applied.

    Dropout and AlphaDropout (and dnnlab's seeded versions, which share their formulas) are
    rewritten with a stateless seeded uniform and Keras's formulas, so they keep Keras's
    distribution and are reproducible from the seed; broadcasting the mask against the untiled
    rows saves materialising the tiled input. Another subclass with its own ``call`` is called in
    training mode instead, drawing from its own seed generator.
    """
    rate = float(layer.rate)
    noise_shape = getattr(layer, "noise_shape", None)
    if rate == 0.0:
        return lambda h, seed, samples: _tile(h, samples)
    if type(layer).call in (keras.layers.Dropout.call, SeededDropout.call):
        scale = 1.0 / (1.0 - rate) if rate < 1.0 else 0.0

        def kept(h):
            return h * scale

        dropped = 0.0
    elif type(layer).call in (keras.layers.AlphaDropout.call, SeededAlphaDropout.call):
        a, b, dropped = alpha_dropout_affine(rate)

        def kept(h):
            return a * h + b

    else:
        return lambda h, seed, samples: layer(_tile(h, samples), training=True)

    def apply(h, seed, samples):
        width = h.shape[-1] if noise_shape is None or noise_shape[-1] is None else noise_shape[-1]
        mask_shape = tf.concat([[samples], concrete_noise_shape(h, noise_shape)], axis=0)
        keep = _keep_mask(mask_shape, width, rate, seed)
        out = tf.where(keep, kept(h), tf.constant(dropped, h.dtype))  # (samples, *h.shape)
        return tf.reshape(out, tf.concat([[samples * tf.shape(h)[0]], tf.shape(h)[1:]], axis=0))

    return apply


def _keep_mask(shape, width: int | None, rate: float, seed):
    """Boolean mask of ``shape`` (last axis ``width``), True with probability 1 - rate.

    Keras compares a float32 uniform (23 random bits) with the rate; comparing 16-bit integers
    with ceil(rate * 2**16) instead halves the random bits to generate, the largest cost of MC
    dropout, and raises the drop probability by less than 2**-16 (0.2 -> 0.2000122).
    """
    threshold = math.ceil(rate * _MASK_LEVELS)
    if threshold >= _MASK_LEVELS:
        return tf.zeros(shape, tf.bool)
    if width is None:  # unknown at trace time: Keras's own comparison
        return tf.random.stateless_uniform(shape, seed) >= rate
    pairs = (width + 1) // 2
    bits = tf.random.stateless_uniform(
        tf.concat([shape[:-1], [pairs]], 0), seed, minval=None, maxval=None, dtype=tf.uint32
    )
    bits = tf.reshape(tf.bitcast(bits, tf.uint16), tf.concat([shape[:-1], [2 * pairs]], 0))
    if 2 * pairs != width:  # an odd width drew one spare value per row
        bits = bits[..., :width]
    return bits >= tf.constant(threshold, tf.uint16)


def _tile(h, samples):
    return tf.tile(h, tf.concat([[samples], tf.ones([tf.rank(h) - 1], tf.int32)], axis=0))


def infer_task(output_layer) -> str:
    activation = getattr(output_layer, "activation", None)
    name = getattr(activation, "__name__", "")
    if isinstance(output_layer, keras.layers.Softmax) or name == "softmax":
        return CLASSIFICATION
    if name == "sigmoid" and getattr(output_layer, "units", None) == 1:
        return CLASSIFICATION
    return REGRESSION


def _tf_class_probabilities(outputs):
    """A one-unit (sigmoid) output p becomes the two classes [1 - p, p]."""
    if outputs.shape[-1] == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs


# --- accumulation -----------------------------------------------------------------------------


class _Moments:
    """Running mean, centred sum of squares and entropy sum over sample chunks (Chan et al.)."""

    def __init__(self):
        self.count = 0

    def add(self, count, mean, centred_squares, entropy_sum):
        mean, centred_squares, entropy_sum = (t.numpy() for t in (mean, centred_squares, entropy_sum))
        if self.count == 0:
            self.count, self.mean, self.centred_squares, self.entropy_sum = (
                count,
                mean,
                centred_squares,
                entropy_sum,
            )
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.centred_squares = (
            self.centred_squares + centred_squares + delta**2 * (self.count * count / total)
        )
        self.entropy_sum = self.entropy_sum + entropy_sum
        self.count = total

    def finish(self, task: str) -> dict[str, np.ndarray]:
        columns = {
            "mean": self.mean.astype(np.float32),
            "std": np.sqrt(self.centred_squares / self.count).astype(np.float32),
        }
        if task == CLASSIFICATION:
            probabilities = class_probabilities(self.mean)
            entropy = -np.sum(_xlogx(probabilities), axis=1)
            # Mutual information is >= 0 by Jensen's inequality; clip rounding noise.
            information = np.clip(entropy - self.entropy_sum / self.count, 0.0, entropy)
            columns["predicted"] = probabilities.argmax(axis=1)
            columns["entropy"] = entropy.astype(np.float32)
            columns["mutual_information"] = information.astype(np.float32)
        return columns


def _xlogx(p):
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def _call_seeds(seed: int, batch_index: int, chunk_index: int, dropout_count: int):
    """One stateless seed pair per dropout layer, derived from (seed, batch, sample chunk)."""
    state = np.random.SeedSequence([seed, batch_index, chunk_index]).generate_state(2 * dropout_count)
    return tf.constant(state.reshape(dropout_count, 2).astype(np.int64))


def _resolve_seed(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PredictError(f"seed must be a non-negative integer or None; received: seed={seed!r}")
    return int(seed)


def _as_batch(model: keras.Model, x) -> np.ndarray:
    model_input = _model_input(model)
    x = np.asarray(x, dtype=keras.backend.floatx() if model_input is None else model_input.dtype)
    if x.ndim == 0 or len(x) == 0:
        raise PredictError(f"x must hold at least one instance; received an array of shape {x.shape}")
    expected = None if model_input is None else tuple(model_input.shape[1:])
    if expected is not None and (
        len(expected) != x.ndim - 1 or any(e is not None and e != a for e, a in zip(expected, x.shape[1:]))
    ):
        shown = ", ".join("?" if e is None else str(e) for e in expected)
        raise PredictError(
            f"x does not fit the model's input: expected shape (instances, {shown}); received {x.shape}"
        )
    return x


def _model_input(model: keras.Model):
    """The model's single input tensor spec, or None when the model does not expose one."""
    try:
        return model.inputs[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _regression_targets(y, mean: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.size != mean.size:
        raise PredictError(f"y must match the predictions' shape {mean.shape}; received shape {y.shape}")
    return y.reshape(mean.shape)
