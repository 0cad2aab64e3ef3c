"""What a small run costs beyond its training steps: traces of the train step and model saves."""

from __future__ import annotations

import os

import numpy as np
from helpers import read_json, start, write_spec

from dnnlab import train
from dnnlab.build import load_model
from dnnlab.spec import check_spec

SMALL = {
    "name": "small",
    "seed": 5,
    "data": {
        "dataset": {"type": "synthetic", "shape": [12], "classes": 3, "train": 300, "test": 40},
        "validation": 60,
    },
    "model": {"hidden": [16], "normalization": "batch_norm", "dropout": {"rate": 0.2, "where": "hidden"}},
    "training": {
        "epochs": 1,
        "batch_size": 16,
        "optimizer": {"type": "nadam", "learning_rate": 0.002},
        "early_stopping": {"patience": 2, "restore_best_weights": True},
    },
}


def test_the_first_epoch_traces_the_train_step_once(tmp_path):
    """Keras creates the optimizer's and the metrics' variables while tracing the first step,
    and TensorFlow traces such a function twice; prepare() creates them beforehand."""
    checked = check_spec(write_spec(tmp_path, SMALL))
    prepared = train.prepare(checked.spec, checked.info.input_shape, None, None)
    model, dataset = prepared.model, prepared.dataset
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    model.fit(dataset.x_train, dataset.y_train, batch_size=16, epochs=1, verbose=0)
    assert len(traces) == 1


def test_a_best_epoch_is_serialized_once(tmp_path):
    """Early stopping's best weights and the checkpoint of the same epoch are the same bytes in
    two independent files, and hold the weights of model.keras (the restored best epoch)."""
    result = start(write_spec(tmp_path, SMALL), tmp_path / "runs")
    assert result.status == "completed"
    checkpoints = result.run_dir / "checkpoints"
    state = read_json(result.run_dir / "state.json")
    assert state["callbacks"]["early_stopping"]["best_epoch"] == 0
    checkpoint, best = checkpoints / "epoch-00001.keras", checkpoints / "early_stopping_best.keras"
    assert checkpoint.read_bytes() == best.read_bytes()
    assert not os.path.samefile(checkpoint, best)
    saved = load_model(checkpoints / "epoch-00001.keras").get_weights()
    final = load_model(result.run_dir / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, final, strict=True))
