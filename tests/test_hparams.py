"""TensorBoard's HParams dashboard sees a run: its flattened spec and its best and test scores,
read back with TensorBoard's own event reader from a run trained for real."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import train_run, write_spec
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata, plugin_data_pb2
from tensorboard.util import tensor_util

from dnnlab.training.hparams import flatten_spec

SPEC = {
    "name": "hp",
    "seed": 3,
    "data": {
        "dataset": {"type": "synthetic", "shape": [8], "classes": 3, "train": 120, "test": 30},
        "validation": 30,
    },
    "model": {"hidden": [8], "activation": "elu"},
    "training": {"epochs": 2, "batch_size": 32, "optimizer": {"type": "sgd", "learning_rate": 0.05}},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hparams")
    return train_run(write_spec(root, SPEC), root / "runs")


def test_the_run_writes_its_flattened_spec_as_an_hparams_session(run_dir):
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    data = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG])
    info = data.session_start_info
    values = {
        key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in info.hparams.items()
    }
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert values["training.optimizer.learning_rate"] == pytest.approx(0.05)
    assert values["model.activation.type"] == "elu"
    assert values["seed"] == 3
    assert set(values) == set(flatten_spec(config))
    assert info.group_name == run_dir.name


def test_best_and_test_scores_are_scalars_beside_the_session(run_dir):
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    (best,) = events.Tensors(f"best_{record['best']['metric']}")
    assert float(tensor_util.make_ndarray(best.tensor_proto)) == pytest.approx(
        record["best"]["value"], rel=1e-6
    )
    (accuracy,) = events.Tensors("test_accuracy")
    assert float(tensor_util.make_ndarray(accuracy.tensor_proto)) == pytest.approx(record["test"]["accuracy"])


def test_flatten_spec_gives_tracker_values():
    flat = flatten_spec({"a": {"b": [1, 2], "c": None, "d": {"e": True}}, "f": 0.1})
    assert flat == {"a.b": "[1, 2]", "a.c": "none", "a.d.e": True, "f": 0.1}
