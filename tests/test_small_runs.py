"""What a small run costs beyond its training steps: traces of the train step and model saves."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from helpers import read_json, start, write_spec

from dnnlab.data.checked_spec import check_spec
from dnnlab.model.build import load_model
from dnnlab.training import pipeline, setup

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


def test_the_first_epoch_traces_the_train_step_once(tmp_path, monkeypatch):
    """Keras creates the optimizer's and the metrics' variables while tracing the first step,
    and TensorFlow traces such a function twice; prepare() creates them beforehand. The epoch's
    shorter last batch is trained by the same traced step, not a second one."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    keras_step = TensorFlowTrainer.train_step
    monkeypatch.setattr(
        TensorFlowTrainer, "train_step", lambda self, data: traces.append(1) or keras_step(self, data)
    )
    short_last_batch = {**SMALL, "training": {**SMALL["training"], "batch_size": 32}}  # 240 rows
    checked = check_spec(write_spec(tmp_path, short_last_batch))
    prepared = setup.prepare(checked.spec, checked.info.input_shape, None, None)
    model, dataset, batch_size = prepared.model, prepared.dataset, checked.spec.training.batch_size
    assert not prepared.execution.jit_compile and len(dataset.x_train) % batch_size == 16
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    per_call = prepared.execution.steps_per_execution
    model.fit(
        pipeline.make_train_dataset(dataset.x_train, dataset.y_train, batch_size, 5, epoch, per_call),
        verbose=0,
    )
    assert len(traces) == 1
    assert int(model.optimizer.iterations.numpy()) == 8  # 7 batches of 32 and one of 16


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
