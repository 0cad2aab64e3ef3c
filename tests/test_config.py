"""Specs: overrides, shorthand, and Géron's advice given as warnings by the checks."""

from __future__ import annotations

import pytest

from dnnlab.data.checked_spec import check_spec
from dnnlab.errors import ConfigError
from dnnlab.spec.loading import load_spec, spec_to_dict


def regression(data: dict, **model) -> dict:
    return {"data": data, "model": {"hidden": [30, 20], **model}}


# --- overrides -----------------------------------------------------------------------------


def test_override_sets_a_nested_value(write_spec, regression_data):
    spec = regression(regression_data)
    spec["training"] = {"optimizer": {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}}
    path = write_spec(spec)
    loaded = load_spec(path, ["training.optimizer.learning_rate=0.01", "training.epochs=3"])
    assert loaded.training.optimizer.learning_rate == 0.01
    assert loaded.training.optimizer.momentum == 0.9  # siblings are kept
    assert loaded.training.epochs == 3
    assert load_spec(path).training.optimizer.learning_rate == 0.1  # the file is untouched


def test_override_learning_rate_of_the_default_optimizer(write_spec, regression_data):
    path = write_spec(regression(regression_data))
    loaded = load_spec(path, ["training.optimizer.learning_rate=0.01"])
    assert loaded.training.optimizer.type == "nadam"
    assert loaded.training.optimizer.learning_rate == 0.01


def test_override_values_are_parsed_as_yaml(write_spec, regression_data):
    path = write_spec(regression(regression_data))
    loaded = load_spec(path, ["model.hidden=[64, 32, 16]", "data.scaling=unit"])
    assert loaded.model.hidden == [64, 32, 16]
    assert loaded.data.scaling == "unit"


def test_override_expands_a_shorthand_string(write_spec, regression_data):
    """`activation: leaky_relu` becomes {type: leaky_relu} so that its alpha can be set."""
    path = write_spec(regression(regression_data, activation="leaky_relu"))
    loaded = load_spec(path, ["model.activation.alpha=0.2"])
    assert spec_to_dict(loaded)["model"]["activation"] == {"type": "leaky_relu", "alpha": 0.2}


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.hidden=abc", "model.hidden"),
        ("noequals", "KEY=VALUE"),
        ("=3", "KEY=VALUE"),
        ("model.hidden=[1,", "not valid YAML"),
        ("model.activaton=relu", "did you mean 'activation'"),
    ],
)
def test_invalid_override_is_a_one_line_config_error(write_spec, regression_data, override, fragment):
    path = write_spec(regression(regression_data))
    with pytest.raises(ConfigError) as caught:
        load_spec(path, [override])
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


# --- Géron's advice ---------------------------------------------------------------------


def warnings_of(write_spec, spec: dict) -> dict[str, str]:
    """Warning key -> message for a spec that is valid (a merged warning under each of its keys)."""
    findings = check_spec(write_spec(spec)).warnings
    assert all(f.level == "warning" for f in findings)
    return {key: f.message for f in findings for key in f.keys}


@pytest.mark.parametrize(
    "model, data_changes, key, fragment",
    [
        ({"activation": "selu", "initializer": "he_normal"}, {}, "model.initializer", "lecun_normal"),
        ({"activation": "selu", "normalization": "batch_norm"}, {}, "model.normalization", "batch norm"),
        (
            {"activation": "selu", "input_normalization": "batch_norm"},
            {},
            "model.normalization",
            "batch norm",
        ),
        (
            {"activation": "selu", "regularizer": {"type": "l2", "factor": 0.01}},
            {},
            "model.regularizer",
            "l1/l2",
        ),
        ({"activation": "selu", "dropout": {"rate": 0.2}}, {}, "model.dropout", "alpha_dropout"),
        ({"activation": "selu"}, {"scaling": "none"}, "data.scaling", "standardized"),
        ({"activation": "relu", "initializer": "glorot_uniform"}, {}, "model.hidden[0]", "He initialization"),
        ({"activation": "elu", "initializer": "lecun_normal"}, {}, "model.hidden[1]", "He initialization"),
        ({"activation": "sigmoid", "initializer": "he_normal"}, {}, "model.hidden[0]", "Glorot"),
        (
            {
                "activation": "tanh",
                "initializer": {"type": "variance_scaling", "scale": 2.0, "mode": "fan_avg"},
            },
            {},
            "model.hidden[0]",
            "Glorot",
        ),
    ],
    ids=[
        "selu+he",
        "selu+bn",
        "selu+input-bn",
        "selu+l2",
        "selu+dropout",
        "selu+unscaled",
        "relu+glorot",
        "elu+lecun",
        "sigmoid+he",
        "tanh+he-fan-avg",
    ],
)
def test_gerons_advice_is_a_warning(write_spec, regression_data, model, data_changes, key, fragment):
    spec = regression({**regression_data, **data_changes}, **model)
    found = warnings_of(write_spec, spec)
    assert key in found, found
    assert fragment in found[key]


@pytest.mark.parametrize(
    "model",
    [
        {"activation": "selu"},  # lecun_normal by default, standardized inputs
        {"activation": "selu", "dropout": {"type": "alpha_dropout", "rate": 0.1}},
        {"activation": "relu"},
        {"activation": "elu", "initializer": {"type": "variance_scaling", "scale": 2.0, "mode": "fan_avg"}},
        {"activation": "sigmoid"},
        {"activation": "leaky_relu", "initializer": "he_uniform", "normalization": "batch_norm"},
    ],
    ids=["selu", "selu+alpha-dropout", "relu", "elu+he-fan-avg", "sigmoid", "leaky_relu+bn"],
)
def test_gerons_pairings_give_no_warning(write_spec, regression_data, model):
    assert warnings_of(write_spec, regression(regression_data, **model)) == {}


# Géron's batch-norm-before-activation model, written out layer by layer.
BN_BEFORE_LAYERS = [
    {"type": "flatten"},
    {"type": "dense", "units": 300, "initializer": "he_normal"},
    {"type": "batch_norm"},
    {"type": "elu"},
    {"type": "dense", "units": 100, "use_bias": False, "initializer": "he_normal"},
    {"type": "batch_norm"},
    {"type": "elu"},
    {"type": "dense", "units": 10, "activation": "softmax"},
]


def test_dense_with_bias_before_batch_norm_is_a_warning(write_spec, images_data):
    found = warnings_of(write_spec, {"data": images_data, "model": {"layers": BN_BEFORE_LAYERS}})
    assert "use_bias: false" in found["model.layers[1].use_bias"]
    assert "model.layers[4].use_bias" not in found  # that one already has use_bias: false


def test_he_init_before_batch_norm_and_elu_layers_is_not_questioned(write_spec, images_data):
    found = warnings_of(write_spec, {"data": images_data, "model": {"layers": BN_BEFORE_LAYERS}})
    assert list(found) == ["model.layers[1].use_bias"]


@pytest.mark.parametrize("plateau, stopping, warned", [(10, 10, True), (12, 10, True), (5, 10, False)])
def test_plateau_patience_not_below_early_stopping_patience_is_a_warning(
    write_spec, regression_data, plateau, stopping, warned
):
    spec = regression(regression_data)
    spec["training"] = {
        "schedule": {"type": "plateau", "patience": plateau},
        "early_stopping": {"patience": stopping},
    }
    found = warnings_of(write_spec, spec)
    assert ("training.schedule.patience" in found) is warned
    if warned:
        assert f"({plateau})" in found["training.schedule.patience"]


def test_same_advice_for_several_layers_is_one_warning(write_spec, images_data):
    """Three dense layers with the same mismatch: one finding naming each layer, in order."""
    layers = [
        {"type": "flatten"},
        {"type": "dense", "units": 30, "activation": "relu"},
        {"type": "dense", "units": 20, "activation": "relu"},
        {"type": "dense", "units": 20, "activation": "elu", "initializer": "he_normal"},
        {"type": "dense", "units": 10, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    findings = check_spec(write_spec({"data": images_data, "model": {"layers": layers}})).warnings
    assert [str(f) for f in findings] == [
        "model.layers[1], model.layers[2], model.layers[4]: ReLU and its variants want He "
        "initialization (he_normal); received glorot_uniform"
    ]
    assert findings[0].keys == ("model.layers[1]", "model.layers[2]", "model.layers[4]")


def test_cli_prints_merged_advice_as_one_line(write_spec, regression_data):
    from test_cli import invoke

    spec = regression(regression_data, activation="relu", initializer="glorot_uniform")
    spec["model"]["hidden"] = [30, 20, 10]
    result = invoke("check", write_spec(spec))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: model.hidden[0], model.hidden[1], model.hidden[2]: ReLU and its variants want He "
        "initialization (he_normal); received glorot_uniform"
    ]


# --- the vocabulary's name lists, read off the models --------------------------------------


def test_name_lists_are_read_off_the_unions():
    from dnnlab.spec import data as spec_data
    from dnnlab.spec import model as spec_model
    from dnnlab.spec import training as spec_training

    assert spec_model.NAMED_INITIALIZERS == (
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
    )
    assert spec_model.PLAIN_ACTIVATIONS == (
        "sigmoid",
        "logistic",
        "tanh",
        "relu",
        "selu",
        "softmax",
        "linear",
    )
    assert spec_model.ACTIVATION_NAMES == (
        *spec_model.PLAIN_ACTIVATIONS,
        "leaky_relu",
        "rrelu",
        "prelu",
        "elu",
    )
    assert spec_training.OPTIMIZER_NAMES == (
        "sgd",
        "adagrad",
        "rmsprop",
        "adam",
        "adamax",
        "nadam",
        "adamw",
        "ftrl",
    )
    assert spec_training.SCHEDULE_NAMES == (
        "none",
        "power",
        "exponential",
        "piecewise",
        "plateau",
        "one_cycle",
    )
    assert spec_data.KERAS_DATASETS == ("mnist", "fashion_mnist", "cifar10", "cifar100")
    assert spec_data.SKLEARN_DATASETS == ("digits", "iris", "wine", "breast_cancer", "diabetes")
