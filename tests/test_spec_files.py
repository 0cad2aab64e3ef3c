"""Spec files: `extends:` chains, errors that name the file or override to fix, and the
resolved spec that `check --print-config` prints. Nothing is trained."""

from __future__ import annotations

import json

import pytest
import yaml
from test_cli import assert_one_line_error, invoke

from dnnlab.data.checked_spec import check_spec
from dnnlab.errors import ConfigError
from dnnlab.spec.loading import json_schema, load_spec, spec_hash, spec_to_dict

BASE = {
    "name": "base",
    "data": {"dataset": "digits"},
    "model": {"hidden": [30, 20], "activation": "elu"},
    "training": {"epochs": 5, "optimizer": {"type": "nadam", "beta_1": 0.8, "learning_rate": 0.002}},
}


def flat(**changes) -> dict:
    """BASE with whole top-level sections replaced: the spec a child file should resolve to."""
    return {**yaml.safe_load(yaml.safe_dump(BASE)), **changes}


# --- extends -------------------------------------------------------------------------------


def test_child_overriding_one_key_resolves_like_the_flat_spec(write_spec):
    write_spec(BASE, "base.yaml")
    child = write_spec({"extends": "base.yaml", "training": {"epochs": 7}}, "child.yaml")
    training = {**BASE["training"], "epochs": 7}
    expected = write_spec(flat(training=training), "flat.yaml")
    assert check_spec(child).spec == check_spec(expected).spec
    assert spec_hash(check_spec(child).spec) == spec_hash(check_spec(expected).spec)
    assert check_spec(child).spec.training.optimizer.beta_1 == 0.8  # siblings are inherited


def test_mapping_of_another_type_replaces_the_parents(write_spec):
    """sgd over a nadam parent: the parent's beta_1 must not leak into sgd (an unknown key)."""
    write_spec(BASE, "base.yaml")
    child = write_spec({"extends": "base.yaml", "training": {"optimizer": {"type": "sgd"}}}, "child.yaml")
    optimizer = load_spec(child).training.optimizer
    assert (optimizer.type, optimizer.learning_rate, optimizer.momentum) == ("sgd", 0.01, 0.0)
    assert load_spec(child).training.epochs == 5


def test_mapping_without_type_extends_a_shorthand_string(write_spec):
    write_spec({**BASE, "model": {"hidden": [8], "activation": "leaky_relu"}}, "base.yaml")
    child = write_spec({"extends": "base.yaml", "model": {"activation": {"alpha": 0.2}}}, "child.yaml")
    assert spec_to_dict(load_spec(child))["model"]["activation"] == {"type": "leaky_relu", "alpha": 0.2}


def test_a_list_in_the_child_replaces_the_parents(write_spec):
    write_spec(BASE, "base.yaml")
    child = write_spec({"extends": "base.yaml", "model": {"hidden": [5]}}, "child.yaml")
    assert load_spec(child).model.hidden == [5]
    assert load_spec(child).model.activation.type == "elu"


def test_chain_of_two_with_paths_relative_to_each_file(write_spec, tmp_path):
    (tmp_path / "bases").mkdir()
    write_spec(BASE, "bases/root.yaml")
    write_spec({"extends": "root.yaml", "training": {"epochs": 3}}, "bases/middle.yaml")
    child = write_spec({"extends": "bases/middle.yaml", "seed": 7}, "child.yaml")
    spec = load_spec(child)
    assert (spec.seed, spec.training.epochs, spec.model.hidden, spec.name) == (7, 3, [30, 20], "base")


def test_resolved_config_has_no_extends_key(write_spec):
    write_spec(BASE, "base.yaml")
    child = write_spec({"extends": "base.yaml"}, "child.yaml")
    assert "extends" not in spec_to_dict(check_spec(child).spec)


def test_cycle_is_one_line_naming_both_files(write_spec):
    a = write_spec({"extends": "b.yaml"}, "a.yaml")
    write_spec({"extends": "a.yaml", **BASE}, "b.yaml")
    line = assert_one_line_error(invoke("check", a), "a.yaml", "b.yaml", "cycle")
    assert line.count("->") == 2


def test_spec_extending_itself_is_a_cycle(write_spec):
    path = write_spec({"extends": "spec.yaml", **BASE})
    with pytest.raises(ConfigError, match="cycle"):
        load_spec(path)


def test_missing_parent_is_one_line(write_spec):
    path = write_spec({"extends": "nowhere.yaml", "seed": 1})
    assert_one_line_error(invoke("check", path), str(path), "extends", "nowhere.yaml", "no such file")


@pytest.mark.parametrize("value", [3, ["a.yaml"], ""])
def test_extends_must_be_a_path(write_spec, value):
    path = write_spec({"extends": value, **BASE})
    assert_one_line_error(invoke("check", path), "extends", "expected the path of a spec file")


def test_error_in_a_parent_names_the_parent(write_spec):
    base = write_spec({**BASE, "model": {"hidden": [30], "activaton": "relu"}}, "base.yaml")
    child = write_spec({"extends": "base.yaml", "seed": 1}, "child.yaml")
    line = assert_one_line_error(invoke("check", child), "model.activaton", "did you mean 'activation'")
    assert line.startswith(f"error: {base}: ")


def test_parent_that_is_not_a_mapping_is_named(write_spec):
    base = write_spec("- 1\n- 2\n", "base.yaml")
    child = write_spec({"extends": "base.yaml"}, "child.yaml")
    assert_one_line_error(invoke("check", child), str(base), "expected a YAML mapping", "received list")


def test_schema_accepts_extends():
    schema = json_schema()
    assert schema["properties"]["extends"]["type"] == "string"
    assert schema["additionalProperties"] is False


# --- errors name the override that set the key ---------------------------------------------


def test_override_error_starts_with_the_override(write_spec):
    path = write_spec(BASE)
    line = assert_one_line_error(invoke("check", path, "-o", "training.epochs=x"), "'x'")
    assert line.startswith("error: -o training.epochs=x: training.epochs: input should be a valid integer")


def test_override_of_a_type_is_named(write_spec):
    path = write_spec(BASE)
    line = assert_one_line_error(invoke("check", path, "-o", "training.optimizer.type=sgdd"))
    assert line.startswith("error: -o training.optimizer.type=sgdd: training.optimizer: unknown type 'sgdd'")


def test_overriding_the_type_of_a_section_left_out_gives_that_type_with_its_own_defaults(write_spec):
    """The spec names no optimizer (nadam by default): `type=sgd` is SGD, not SGD with nadam's
    beta_1 (refused as an unknown key before)."""
    path = write_spec({**BASE, "training": {"epochs": 5}})
    overrides = ["training.optimizer.type=sgd", "training.optimizer.momentum=0.9"]
    sgd = load_spec(path, overrides).training.optimizer
    assert (sgd.type, sgd.momentum, sgd.learning_rate) == ("sgd", 0.9, 0.01)
    nadam = load_spec(path, ["training.optimizer.learning_rate=0.003"]).training.optimizer
    assert (nadam.type, nadam.learning_rate, nadam.beta_1) == ("nadam", 0.003, 0.9)
    assert invoke("check", path, "-o", "training.optimizer.type=adagrad").exit_code == 0


def test_file_error_still_names_the_file_when_overrides_are_given(write_spec):
    path = write_spec({**BASE, "training": {"epochs": "ten"}})
    line = assert_one_line_error(invoke("check", path, "-o", "seed=3"), "training.epochs")
    assert line.startswith(f"error: {path}: ")


def test_later_override_of_the_same_key_is_the_one_named(write_spec):
    path = write_spec(BASE)
    with pytest.raises(ConfigError) as caught:
        load_spec(path, ["model.hidden=[4]", "model.hidden=[0]"])
    assert str(caught.value).startswith("-o model.hidden=[0]: model.hidden[0]: ")


# --- check --print-config ------------------------------------------------------------------


def test_print_config_is_the_resolved_spec(write_spec):
    path = write_spec({"data": {"dataset": "digits"}, "model": {"hidden": [16]}})
    result = invoke("check", path, "--print-config")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed == spec_to_dict(check_spec(path).spec)
    assert printed["model"]["output"] == {
        "units": 10,
        "activation": {"type": "softmax"},
        "initializer": {"type": "glorot_uniform"},
    }
    assert printed["training"]["loss"] == "sparse_categorical_crossentropy"
    assert "valid:" in result.stderr


def test_print_config_keeps_warnings_on_stderr(write_spec):
    spec = {"data": {"dataset": "digits"}, "model": {"hidden": [16, 8], "initializer": "glorot_uniform"}}
    result = invoke("check", write_spec(spec), "--print-config")
    assert result.exit_code == 0, result.output
    assert "He initialization" in result.stderr
    assert "warning" not in result.stdout and yaml.safe_load(result.stdout)["seed"] == 42


def test_print_config_with_json_puts_the_config_in_the_object(write_spec):
    path = write_spec({"data": {"dataset": "digits"}, "model": {"hidden": [16]}})
    payload = json.loads(invoke("check", path, "--print-config", "--json").stdout)
    assert payload["valid"] is True
    assert payload["config"] == spec_to_dict(check_spec(path).spec)
    assert "config" not in json.loads(invoke("check", path, "--json").stdout)
