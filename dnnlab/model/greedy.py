"""Greedy layer-wise pretraining's models (Géron, Hands-On Machine Learning, ch. 11 and 17): the
one-layer autoencoder of each hidden dense layer of a classifier, the codes it learns from, and
the copy of its trained encoder back into the classifier.

A phase's autoencoder holds copies of the layer's block (the dense layer and what follows it:
activation, batch norm; not dropout, which acts in the fine-tune only), with the spec's noise
before it (`model.autoencoder.noise`: a stacked denoising autoencoder) and a decoder after it (a
Dense layer, or with `tied` the transpose of the encoder's kernel). It trains on the codes of
the layers below, computed once per phase in inference mode: those layers are frozen by not
being part of the model at all.
"""

from __future__ import annotations

import keras
import numpy as np

from dnnlab.model.build import NOISE, make, tied_layer
from dnnlab.model.transfer import OUTPUT_LAYERS
from dnnlab.spec.model import Autoencoder

# Layers that act in training only, left out of a phase's autoencoder.
TRAINING_NOISE = (
    keras.layers.Dropout,
    keras.layers.AlphaDropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
)
CODE_BATCH = 4096  # rows per call when computing codes: fixed, so the codes never depend on it


def hidden_blocks(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """Each hidden Dense layer with the layers after it up to the next Dense or the output."""
    blocks: list[list[keras.layers.Layer]] = []
    for layer in model.layers:
        if layer.name in OUTPUT_LAYERS:
            break
        if isinstance(layer, keras.layers.Dense):
            blocks.append([layer])
        elif blocks:
            blocks[-1].append(layer)
    return blocks


def codes(model: keras.Model, index: int, x: np.ndarray) -> np.ndarray:
    """What the layers below hidden block `index` make of `x`, in inference mode (no dropout,
    batch norm's moving statistics): the inputs, and targets, of that block's autoencoder."""
    first = hidden_blocks(model)[index][0]
    below = model.layers[: model.layers.index(first)]
    parts = []
    for start in range(0, len(x), CODE_BATCH):
        h = keras.ops.convert_to_tensor(x[start : start + CODE_BATCH])
        for layer in below:
            h = layer(h, training=False)
        parts.append(keras.ops.convert_to_numpy(h))
    return np.concatenate(parts).astype(np.float32)


def phase_model(
    classifier: keras.Model,
    index: int,
    inputs: int,
    loss: str,
    settings: Autoencoder | None,
    decoder_seed: int,
) -> keras.Model:
    """The uncompiled autoencoder of hidden block `index`: [noise] copies of the block's layers
    holding the classifier's current weights, then a decoder back to `inputs` values (sigmoid
    for binary cross-entropy, else linear), its kernel drawn from `decoder_seed`."""
    block = [layer for layer in hidden_blocks(classifier)[index] if not isinstance(layer, TRAINING_NOISE)]
    copies = [type(layer).from_config(layer.get_config()) for layer in block]
    stack: list[keras.layers.Layer] = []
    if settings is not None and settings.noise is not None:
        stack.append(make(NOISE, settings.noise, "noise"))
    stack += copies
    activation = "sigmoid" if loss == "binary_crossentropy" else "linear"
    if settings is not None and settings.tied:
        stack.append(tied_layer(inputs, "output", activation, copies[0]))
    else:
        initializer = keras.initializers.GlorotUniform(seed=decoder_seed)
        stack.append(keras.layers.Dense(inputs, activation, kernel_initializer=initializer, name="output"))
    model = keras.Sequential([keras.Input(shape=(inputs,)), *stack], name=f"pretrain_{index + 1}")
    for copy, original in zip(copies, block, strict=True):
        copy.set_weights(original.get_weights())
    return model


def copy_back(phase: keras.Model, classifier: keras.Model) -> list[str]:
    """The trained encoder layers of `phase` into the classifier's layers of the same names;
    returns those names."""
    names, own = [], {layer.name for layer in classifier.layers}
    for layer in phase.layers:
        if layer.weights and layer.name != "output" and layer.name in own:
            classifier.get_layer(layer.name).set_weights(layer.get_weights())
            names.append(layer.name)
    return names
