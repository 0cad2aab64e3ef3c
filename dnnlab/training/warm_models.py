"""Traced models kept warm in a sweep worker, so a later trial of the same structure skips tracing.

Tracing a new model's train and test steps is most of a short trial: a one-epoch trial of a small
network on digits took 1.05 s tracing and 0.61 s on a kept model (benchmarks/rung_trial.py), the
epoch itself about 0.25 s. A search's configurations often share a structure and differ only in
values: the learning rate, the dropout rates, the initial weights, the seed. A worker that calls
`enable()` keeps the models it trained, keyed by everything their traced steps hold as constants
(`structure_key`); a trial whose freshly built or loaded model has a key already kept trains the
kept model instead, once every variable's value is copied over from the fresh one (weights, seed
states, optimizer slots and iteration count, the learning rate; metrics reset) and its dropout
layers are given their rates (`SeededDropout` reads its rate from variables). The traced steps then
run the same graph on the same values as the fresh model's would, so the trial's numbers are the
same bits (tests/test_warm_models.py).

A model trained under XLA keeps its compiled program too (scoring the test split without XLA puts
it back after, see execution.without_xla), so a later trial compiles nothing. Not kept: transfer
and pretraining (their phases recompile the model), and a model whose trial failed or was
interrupted (`forget_all`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import keras
import numpy as np

from dnnlab.model.layers import SeededDropout

# What a worker keeps, the least recently used dropped first: distinct structures, and the numbers
# their variables hold (weights and optimizer slots: 100 MB in float32).
KEPT_MODELS = 32
KEPT_VALUES = 25_000_000

_kept: OrderedDict[str, keras.Model] | None = None  # None: this process keeps none
_reuses = 0


def enable() -> None:
    """Keep traced models in this process from now on (a sweep worker's start-up)."""
    global _kept
    if _kept is None:
        _kept = OrderedDict()


def disable() -> None:
    """Keep none from now on, and drop those kept."""
    global _kept
    _kept = None


def reuses() -> int:
    """How many trials of this process trained on a kept model."""
    return _reuses


def forget_all() -> None:
    """Drop every kept model: after a trial that failed or was interrupted, whose model's state
    (a step traced halfway) is not worth trusting."""
    if _kept is not None:
        _kept.clear()


def kept_for(fresh: keras.Model, block: dict[str, Any]) -> keras.Model | None:
    """A kept model of `fresh`'s structure, now holding `fresh`'s values (its weights, its
    optimizer's state, metrics reset), or None. `block` is what the train step's closure holds
    besides the model (execution plan, batch size, rows); `fresh` is compiled."""
    if _kept is None:
        return None
    key = structure_key(fresh, block)
    kept = _kept.get(key) if key is not None else None
    if kept is None or structure_key(kept, block) != key:  # a kept model changed since: not reused
        return None
    if not fresh.optimizer.built:  # a new run's: its initial state to copy (a loaded one's is built)
        fresh.optimizer.build(fresh.trainable_variables)
    if not _copy_values(kept, fresh):
        return None
    global _reuses
    _reuses += 1
    _kept.move_to_end(key)
    return kept


def keep(model: keras.Model, block: dict[str, Any]) -> None:
    """Keep `model` (built for training, about to be traced) for later trials of its structure."""
    key = structure_key(model, block) if _kept is not None else None
    if key is None:
        return
    _kept[key] = model
    _kept.move_to_end(key)
    while len(_kept) > KEPT_MODELS or (len(_kept) > 1 and sum(map(_values, _kept.values())) > KEPT_VALUES):
        _kept.popitem(last=False)


def _values(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in [*model.variables, *model.optimizer.variables])


def structure_key(model: keras.Model, block: dict[str, Any]) -> str | None:
    """Everything a traced step of `model` holds as a constant, as text: the model's config with
    each SeededDropout's rate reduced to whether it is zero (its `call` skips a zero rate), the
    compile config with a constant learning rate left out (a variable the step reads), and
    `block`. None when the config cannot be written as JSON (the model is then not kept)."""
    config = _without_dropout_rates(model.get_config())
    compiled = model.get_compile_config()
    optimizer = compiled.get("optimizer")
    rate = optimizer.get("config", {}).get("learning_rate") if isinstance(optimizer, dict) else None
    if isinstance(rate, (int, float)):
        optimizer = {**optimizer, "config": {**optimizer["config"], "learning_rate": "variable"}}
        compiled = {**compiled, "optimizer": optimizer}
    try:
        return json.dumps([config, compiled, block], sort_keys=True)
    except TypeError:
        return None


def _without_dropout_rates(config: Any) -> Any:
    if isinstance(config, list):
        return [_without_dropout_rates(item) for item in config]
    if not isinstance(config, dict):
        return config
    out = {key: _without_dropout_rates(value) for key, value in config.items()}
    if out.get("class_name") == "SeededDropout" and isinstance(out.get("config"), dict):
        rate = out["config"].get("rate")
        out["config"] = {**out["config"], "rate": "zero" if rate == 0 else "variable"}
    return out


def _copy_values(kept: keras.Model, fresh: keras.Model) -> bool:
    """Give `kept` every value of `fresh`; False (nothing copied) where their variables differ
    in number, shape or dtype."""
    groups = [(kept.variables, fresh.variables), (kept.optimizer.variables, fresh.optimizer.variables)]
    for ours, theirs in groups:
        if len(ours) != len(theirs) or any(
            tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype for a, b in zip(ours, theirs)
        ):
            return False
    kept_dropout, fresh_dropout = _dropout_layers(kept), _dropout_layers(fresh)
    if len(kept_dropout) != len(fresh_dropout):
        return False
    for ours, theirs in groups:
        for a, b in zip(ours, theirs):
            a.assign(b.value)
    for a, b in zip(kept_dropout, fresh_dropout):
        a.rate = b.rate
    kept.reset_metrics()  # as a fresh model's: fit and evaluate reset them too, at their start
    return True


def _dropout_layers(model: keras.Model) -> list[SeededDropout]:
    """The model's SeededDropout layers in order, those of nested models too."""
    found = []
    for layer in model.layers:
        if isinstance(layer, SeededDropout):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += _dropout_layers(layer)
    return found
