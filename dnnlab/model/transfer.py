"""Transfer learning: reuse the trained layers of an earlier run (Géron's model_B_on_A), or
the encoder of an autoencoder run (unsupervised pretraining: its dense layers are named as a
classifier's of the same hidden widths, so they match by name).

The reused layers are copied (not shared), so training the new model never changes the
earlier run's files. They can stay frozen for the first `freeze_epochs` epochs, then train
on with a smaller learning rate, as Géron recommends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from dnnlab.errors import ConfigError
from dnnlab.model.build import load_model
from dnnlab.rundir.directory import RunDir
from dnnlab.spec.model import Transfer

OUTPUT_LAYERS = ("output", "output_activation")


def reusable_layers(model: keras.Model, dense_blocks: int | None) -> list[keras.layers.Layer]:
    """The layers before the output, cut after `dense_blocks` dense layers and what follows
    each (batch norm, activation, dropout); all of them when `dense_blocks` is None."""
    chosen, dense_seen = [], 0
    for layer in model.layers:
        if layer.name in OUTPUT_LAYERS:
            break
        if isinstance(layer, keras.layers.Dense):
            dense_seen += 1
            if dense_blocks is not None and dense_seen > dense_blocks:
                break
        chosen.append(layer)
    return chosen


def apply_transfer(model: keras.Model, transfer: Transfer) -> list[str]:
    """Copy the source run's weights into the matching layers of `model`; freeze them when
    `freeze_epochs` > 0. Returns the names of the reused layers."""
    source_run = RunDir.open(Path(transfer.run))
    source_file = source_run.model_file if source_run.model_file.exists() else source_run.last_checkpoint
    if not source_file.exists():
        raise ConfigError(f"model.transfer.run: {transfer.run} has no model.keras or checkpoint yet")
    source = {layer.name: layer for layer in load_model(source_file, compile=False).layers}
    reused = []
    for layer in reusable_layers(model, transfer.layers):
        if not layer.weights:
            continue
        match = source.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if match is None or [tuple(w.shape) for w in match.weights] != shapes:
            found = [tuple(w.shape) for w in match.weights] if match is not None else "no such layer"
            raise ConfigError(
                f"model.transfer: layer {layer.name!r} has weights {shapes} here but {found} in "
                f"{transfer.run}; reuse fewer layers (model.transfer.layers) or match the architecture"
            )
        layer.set_weights(match.get_weights())
        reused.append(layer.name)
    set_frozen(model, reused, transfer.freeze_epochs > 0)
    return reused


def source_record(transfer: Transfer) -> dict[str, Any]:
    """Where the reused layers came from, for state.json and run.json: the source run as the spec
    names it, its name, task (an autoencoder's encoder, or a classifier's layers) and config hash."""
    source_run = RunDir.open(Path(transfer.run))
    record = source_run.read_record()
    task = None
    if source_run.preprocessing.is_file():
        preprocessing = source_run.read_json(source_run.preprocessing)
        task = preprocessing.get("task") if isinstance(preprocessing, dict) else None
    return {"run": transfer.run, "name": record.name, "task": task, "config_hash": record.config_hash}


def set_frozen(model: keras.Model, names: list[str], frozen: bool) -> None:
    for name in names:
        model.get_layer(name).trainable = not frozen
