"""Every example in configs/ loads, validates and builds, and together they cover Géron's chapter.

The examples are documentation: a renamed key or a broken builder must fail
here, not in front of a reader. Nothing is trained and no data is loaded, so this stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dnnlab.data.checked_spec import check_spec
from dnnlab.spec import model as spec_model
from dnnlab.spec import training as spec_training
from dnnlab.spec.model import CompactModel, DenseLayer
from dnnlab.spec.models import Spec

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


@pytest.fixture(scope="module")
def checked() -> dict[str, object]:
    """Every example, loaded and resolved once (no TensorFlow, no data)."""
    return {path.name: check_spec(path) for path in CONFIGS}


SCIENCE = sorted((CONFIG_DIR / "science").glob("*.yaml"))


@pytest.mark.parametrize("path", SCIENCE, ids=_ids(SCIENCE))
def test_science_experiment_builds(path: Path):
    """configs/science/ shows Géron's failures on purpose, so `check` may warn about them."""
    import keras

    from dnnlab.model.build import build_model

    result = check_spec(path)
    try:
        build_model(result.spec, result.info.input_shape)
    finally:
        keras.backend.clear_session()


def test_science_experiment_names_are_unique(checked):
    names = [result.spec.name for result in checked.values()] + [check_spec(p).spec.name for p in SCIENCE]
    assert len(SCIENCE) >= 5 and len(names) == len(set(names))


def test_there_are_examples():
    assert len(CONFIGS) > 30, f"expected one example per technique in {CONFIG_DIR}"


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_example_builds(path: Path):
    import keras

    from dnnlab.model.build import build_model, count_params

    result = check_spec(path)
    try:
        model = build_model(result.spec, result.info.input_shape)
        assert count_params(model).total > 0
    finally:
        keras.backend.clear_session()


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_example_follows_gerons_advice(path: Path, checked):
    """An example shows good practice, so `dnnlab check` has nothing to warn about."""
    assert [str(w) for w in checked[path.name].warnings] == []


def test_example_names_are_unique(checked):
    names = [result.spec.name for result in checked.values()]
    assert len(names) == len(set(names)), "run directories are named after spec.name"


def techniques(spec: Spec) -> set[str]:
    """Tags for every technique a resolved spec uses, e.g. 'activation:elu', 'batch_norm:before'."""
    used: set[str] = {
        f"optimizer:{spec.training.optimizer.type}",
        f"schedule:{spec.training.schedule.type}",
        f"task:{spec.data.task}",
    }
    optimizer = spec.training.optimizer
    used |= {f"clip:{n}" for n in ("clipvalue", "clipnorm") if getattr(optimizer, n) is not None}
    if optimizer.type == "sgd" and optimizer.momentum > 0:
        used.add("sgd:nesterov" if optimizer.nesterov else "sgd:momentum")
    if spec.training.early_stopping is not None:
        used.add("early_stopping")
    if spec.data.classes is not None:
        used.add("data:classes")
    if spec.data.train_size is not None:
        used.add("data:train_size")
    if spec.data.unlabeled is not None:
        used.add(f"data:unlabeled:{spec.data.unlabeled}")
    if spec.training.pretrain is not None:
        used.add(f"pretrain:{spec.training.pretrain.method}")
    model = spec.model
    if model.transfer is not None:
        used.add("transfer")
    if isinstance(model, CompactModel):
        used |= {
            f"activation:{model.activation.type}",
            f"activation:{model.output.activation.type}",
            f"initializer:{model.initializer.type}",
        }
        if model.normalization.type == "batch_norm":
            used.add(f"batch_norm:{model.normalization.position}")
        if model.input_normalization.type == "batch_norm":
            used.add("batch_norm:input")
        if model.regularizer is not None:
            used.add(f"regularizer:{model.regularizer.type}")
        if model.constraint is not None:
            used.add(f"constraint:{model.constraint.type}")
        if model.dropout is not None:
            used |= {f"dropout:{model.dropout.type}", f"dropout_where:{model.dropout.where}"}
        if model.autoencoder is not None:
            used |= {"autoencoder:tied"} if model.autoencoder.tied else set()
            used |= {f"noise:{model.autoencoder.noise.type}"} if model.autoencoder.noise else set()
        return used
    used.add("form:explicit")
    for layer in model.layers:
        if isinstance(layer, DenseLayer):
            used |= {f"activation:{layer.activation.type}", f"initializer:{layer.initializer.type}"}
            if layer.regularizer is not None:
                used.add(f"regularizer:{layer.regularizer.type}")
            if layer.constraint is not None:
                used.add(f"constraint:{layer.constraint.type}")
        elif layer.type == "activation":
            used.add(f"activation:{layer.activation.type}")
        elif layer.type == "batch_norm":
            used.add("batch_norm:explicit")
        elif layer.type in ("dropout", "alpha_dropout"):
            used.add(f"dropout:{layer.type}")
        elif layer.type != "flatten":
            used.add(f"activation:{layer.type}")
    return used


ALIASES = {"logistic"}  # another name for sigmoid

REQUIRED = {
    *(f"activation:{name}" for name in spec_model.ACTIVATION_NAMES if name not in ALIASES),
    *(f"initializer:{name}" for name in (*spec_model.NAMED_INITIALIZERS, "variance_scaling")),
    *(f"optimizer:{name}" for name in spec_training.OPTIMIZER_NAMES),
    *(f"schedule:{name}" for name in spec_training.SCHEDULE_NAMES),
    "regularizer:l1",
    "regularizer:l2",
    "regularizer:l1_l2",
    "constraint:max_norm",
    "dropout:dropout",
    "dropout:alpha_dropout",
    "dropout_where:all",
    "dropout_where:last",
    "batch_norm:after",
    "batch_norm:before",
    "batch_norm:input",
    "batch_norm:explicit",
    "form:explicit",
    "sgd:momentum",
    "sgd:nesterov",
    "clip:clipvalue",
    "clip:clipnorm",
    "early_stopping",
    "transfer",
    "data:classes",
    "data:train_size",
    "task:regression",
    "task:classification",
    "task:autoencoder",
    "autoencoder:tied",
    "noise:gaussian",
    "data:unlabeled:rest",
    "pretrain:greedy_layerwise",
}


def test_examples_cover_every_technique(checked):
    used = set().union(*(techniques(result.spec) for result in checked.values()))
    assert sorted(REQUIRED - used) == []


def test_default_dnn_is_gerons_table(checked):
    """Géron's default DNN configuration, row by row."""
    spec = checked["default_dnn.yaml"].spec
    assert spec.model.initializer.type == "lecun_normal"
    assert spec.model.activation.type == "selu"
    assert spec.model.normalization.type == "none"
    assert spec.model.regularizer is None and spec.model.dropout is None
    assert spec.training.early_stopping is not None
    assert spec.training.optimizer.type == "nadam"
    assert spec.training.schedule.type == "plateau"
    assert spec.data.scaling == "standardize"


def test_pretrain_example_reuses_the_autoencoder(checked):
    """pretrain_classifier sees the autoencoder's rows and scaling and reuses its encoder's widths."""
    encoder = checked["pretrain_autoencoder.yaml"].spec
    classifier = checked["pretrain_classifier.yaml"].spec
    assert encoder.data.task == "autoencoder" and classifier.data.task == "classification"
    assert classifier.model.hidden == encoder.model.hidden
    assert classifier.model.transfer.run.startswith(f"runs/{encoder.name}-")
    same = ("dataset", "validation", "train_size", "unlabeled", "scaling", "split_seed", "test")
    assert all(getattr(classifier.data, key) == getattr(encoder.data, key) for key in same)


def test_transfer_example_uses_task_a(checked):
    """transfer_b_on_a reuses the hidden layers that transfer_task_a trains."""
    task_a = checked["transfer_task_a.yaml"].spec
    task_b = checked["transfer_b_on_a.yaml"].spec
    assert task_b.model.hidden == task_a.model.hidden
    assert task_b.model.transfer.run.startswith(f"runs/{task_a.name}-")
    assert not set(task_b.data.classes) & set(task_a.data.classes)
