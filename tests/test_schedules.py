"""Learning-rate schedules, one-cycle momentum and plateau scheduling (dnnlab.model.schedules)."""

import json

import keras
import numpy as np
import pytest
from pydantic import TypeAdapter

from dnnlab.model.keras_private import learning_rate_setting
from dnnlab.model.optimizers import (
    OneCycleAdam,
    OneCycleAdamax,
    OneCycleAdamW,
    OneCycleNadam,
    OneCycleRMSprop,
    OneCycleSGD,
    epoch_momentum,
    make_optimizer,
)
from dnnlab.model.schedules import OneCycle, epoch_learning_rate
from dnnlab.spec import training as spec_training
from dnnlab.training.callbacks.plateau import PlateauScheduler, schedule_callbacks

STEPS_PER_EPOCH = 4
BATCH = 8


def optimizer_spec(**fields):
    return TypeAdapter(spec_training.Optimizer).validate_python(fields)


def schedule_spec(**fields):
    return TypeAdapter(spec_training.Schedule).validate_python(fields)


def lr_at_step(optimizer, step):
    return float(keras.ops.convert_to_numpy(learning_rate_setting(optimizer)(step)))


def data(seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(STEPS_PER_EPOCH * BATCH, 3).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], "float32")) + 0.1


def tiny_model(optimizer, seed=1):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=STEPS_PER_EPOCH)
    return model


def fit(model, epochs, initial_epoch=0):
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0)


# --- formulas ------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_power_follows_the_formula(unit):
    opt = make_optimizer(
        optimizer_spec(type="sgd", learning_rate=0.1),
        schedule_spec(type="power", s=3, c=2, unit=unit),
        STEPS_PER_EPOCH,
        20,
    )
    for epoch in range(12):
        t = epoch if unit == "epoch" else epoch * STEPS_PER_EPOCH
        expected = 0.1 / (1 + t / 3) ** 2
        assert epoch_learning_rate(opt, epoch, STEPS_PER_EPOCH) == pytest.approx(expected, rel=1e-6)
    if unit == "step":
        assert lr_at_step(opt, 5) == pytest.approx(0.1 / (1 + 5 / 3) ** 2, rel=1e-6)


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_exponential_follows_gerons_formula(unit):
    opt = make_optimizer(
        optimizer_spec(type="nadam", learning_rate=0.01),
        schedule_spec(type="exponential", s=20, unit=unit),
        STEPS_PER_EPOCH,
        50,
    )
    for epoch in range(0, 50, 3):
        t = epoch if unit == "epoch" else epoch * STEPS_PER_EPOCH
        assert epoch_learning_rate(opt, epoch, STEPS_PER_EPOCH) == pytest.approx(
            0.01 * 0.1 ** (t / 20), rel=1e-5
        )


def test_exponential_base():
    opt = make_optimizer(
        optimizer_spec(type="sgd", learning_rate=1.0),
        schedule_spec(type="exponential", s=2, base=0.5, unit="step"),
        STEPS_PER_EPOCH,
        5,
    )
    assert [lr_at_step(opt, t) for t in (0, 2, 4, 6)] == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_piecewise_matches_gerons_example():
    opt = make_optimizer(
        optimizer_spec(type="sgd"),
        schedule_spec(type="piecewise", boundaries=[5, 15], values=[0.01, 0.005, 0.001]),
        STEPS_PER_EPOCH,
        30,
    )
    rates = [epoch_learning_rate(opt, epoch, STEPS_PER_EPOCH) for epoch in range(25)]
    assert rates == pytest.approx([0.01] * 5 + [0.005] * 10 + [0.001] * 10)


def test_piecewise_in_steps():
    opt = make_optimizer(
        optimizer_spec(type="sgd"),
        schedule_spec(type="piecewise", boundaries=[3, 7], values=[0.3, 0.2, 0.1], unit="step"),
        STEPS_PER_EPOCH,
        3,
    )
    assert [lr_at_step(opt, t) for t in range(10)] == pytest.approx([0.3] * 3 + [0.2] * 4 + [0.1] * 3)


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "power", "s": 2},
        {"type": "exponential", "s": 2},
        {"type": "piecewise", "boundaries": [1, 2], "values": [0.3, 0.2, 0.1]},
        {"type": "one_cycle", "max_lr": 0.1, "unit": "epoch"},
    ],
)
def test_epoch_unit_is_constant_within_an_epoch(schedule):
    opt = make_optimizer(optimizer_spec(type="sgd"), schedule_spec(**schedule), STEPS_PER_EPOCH, 10)
    for epoch in range(5):
        first = epoch * STEPS_PER_EPOCH
        within = [lr_at_step(opt, first + k) for k in range(STEPS_PER_EPOCH)]
        assert within == [within[0]] * STEPS_PER_EPOCH
        assert within[0] == epoch_learning_rate(opt, epoch, STEPS_PER_EPOCH)
    assert epoch_learning_rate(opt, 1, STEPS_PER_EPOCH) != epoch_learning_rate(opt, 2, STEPS_PER_EPOCH)


def test_none_and_plateau_are_constants():
    for kind in ("none", "plateau"):
        opt = make_optimizer(optimizer_spec(type="adam", learning_rate=0.003), schedule_spec(type=kind), 4, 5)
        assert epoch_learning_rate(opt, 0, 4) == pytest.approx(0.003)
        assert epoch_learning_rate(opt, 3, 4) == pytest.approx(0.003)


# --- one cycle -----------------------------------------------------------------------------


def test_one_cycle_learning_rate_shape_in_steps():
    # 10 epochs of 10 steps: half = floor(100 * 0.9 / 2) = 45
    opt = make_optimizer(optimizer_spec(type="sgd"), schedule_spec(type="one_cycle", max_lr=0.1), 10, 10)
    lr = np.array([lr_at_step(opt, t) for t in range(110)])
    assert lr[0] == pytest.approx(0.01)  # start_lr = max_lr / 10
    assert int(np.argmax(lr)) == 45 and lr[45] == pytest.approx(0.1)
    assert np.all(np.diff(lr[:46]) > 0) and np.all(np.diff(lr[45:91]) < 0)
    assert lr[90] == pytest.approx(0.01)
    assert np.all(np.diff(lr[90:100]) < 0)
    assert lr[99] == pytest.approx(1e-5)  # final_lr = start_lr / 1000, at the last step
    assert lr[100:] == pytest.approx(1e-5)
    assert lr[20] == pytest.approx(0.01 + 0.09 * 20 / 45)


def test_one_cycle_learning_rate_in_epochs_with_explicit_rates():
    schedule = schedule_spec(type="one_cycle", max_lr=1.0, start_lr=0.2, final_lr=0.1, unit="epoch")
    opt = make_optimizer(optimizer_spec(type="adagrad"), schedule, STEPS_PER_EPOCH, 10)
    # half = floor(10 * 0.9 / 2) = 4: up over epochs 0-4, down over 4-8, final at epoch 9
    rates = [epoch_learning_rate(opt, epoch, STEPS_PER_EPOCH) for epoch in range(10)]
    assert rates == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6, 0.4, 0.2, 0.1])


def test_one_cycle_momentum_goes_the_opposite_way():
    opt = make_optimizer(
        optimizer_spec(type="sgd", momentum=0.9),
        schedule_spec(type="one_cycle", max_lr=0.1, max_momentum=0.95, min_momentum=0.85),
        10,
        10,
    )
    assert isinstance(opt, OneCycleSGD)
    momentum = np.array([float(opt.momentum_at(t)) for t in range(100)])
    assert momentum[0] == pytest.approx(0.95)
    assert int(np.argmin(momentum)) == 45 and momentum[45] == pytest.approx(0.85)
    assert momentum[90] == pytest.approx(0.95)
    assert momentum[90:] == pytest.approx(0.95)
    assert momentum[30] == pytest.approx(0.95 - 0.1 * 30 / 45)
    assert epoch_momentum(opt, 3, 10) == pytest.approx(0.95 - 0.1 * 30 / 45)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"type": "sgd", "momentum": 0.9, "nesterov": True}, OneCycleSGD),
        ({"type": "rmsprop", "momentum": 0.5}, OneCycleRMSprop),
        ({"type": "adam"}, OneCycleAdam),
        ({"type": "adamax"}, OneCycleAdamax),
        ({"type": "nadam"}, OneCycleNadam),
        ({"type": "adamw"}, OneCycleAdamW),
        ({"type": "sgd"}, keras.optimizers.SGD),
        ({"type": "rmsprop"}, keras.optimizers.RMSprop),
        ({"type": "adagrad"}, keras.optimizers.Adagrad),
        ({"type": "ftrl"}, keras.optimizers.Ftrl),
    ],
)
def test_one_cycle_schedules_momentum_only_where_there_is_one(spec, expected):
    opt = make_optimizer(optimizer_spec(**spec), schedule_spec(type="one_cycle", max_lr=0.1), 4, 3)
    assert type(opt) is expected
    assert (epoch_momentum(opt, 0, 4) is not None) == expected.__name__.startswith("OneCycle")


# 0.875 is exact in float32 and float64, so Keras's Python-float arithmetic and our tensors agree
CONSTANT = {"start": 0.875, "peak": 0.875, "final": 0.875, "total": 100}


@pytest.mark.parametrize(
    "ours, keras_class, kwargs",
    [
        (OneCycleSGD, keras.optimizers.SGD, {"momentum": 0.875}),
        (OneCycleSGD, keras.optimizers.SGD, {"momentum": 0.875, "nesterov": True}),
        (OneCycleRMSprop, keras.optimizers.RMSprop, {"momentum": 0.875}),
        (OneCycleRMSprop, keras.optimizers.RMSprop, {"momentum": 0.875, "centered": True}),
        (OneCycleAdam, keras.optimizers.Adam, {"beta_1": 0.875}),
        (OneCycleAdam, keras.optimizers.Adam, {"beta_1": 0.875, "amsgrad": True}),
        (OneCycleAdamax, keras.optimizers.Adamax, {"beta_1": 0.875}),
        (OneCycleNadam, keras.optimizers.Nadam, {"beta_1": 0.875}),
        (OneCycleAdamW, keras.optimizers.AdamW, {"beta_1": 0.875, "weight_decay": 0.01}),
    ],
)
def test_constant_momentum_schedule_reproduces_keras(ours, keras_class, kwargs):
    """Our update steps are Keras's own when the momentum does not move."""
    rng = np.random.RandomState(0)
    grads = [rng.randn(3, 2).astype("float32") for _ in range(6)]
    weights = []
    for optimizer in (
        keras_class(learning_rate=0.01, **kwargs),
        ours(learning_rate=0.01, momentum_schedule=OneCycle(**CONSTANT), **kwargs),
    ):
        w = keras.Variable(np.ones((3, 2), "float32"))
        for g in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g)], [w])
        weights.append(keras.ops.convert_to_numpy(w))
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6)
    assert not np.allclose(weights[1], 1.0)


def test_sgd_update_uses_the_momentum_of_each_step():
    """m <- mu(t) m - lr g; w <- w + m, with mu(t) from the schedule at the step's iteration."""
    schedule = OneCycle(start=0.9, peak=0.5, final=0.9, total=10, last_fraction=0.0)  # half = 5
    opt = OneCycleSGD(learning_rate=0.1, momentum=0.9, momentum_schedule=schedule)
    w = keras.Variable(np.zeros(2, "float32"))
    grads = [np.array(g, "float32") for g in ([1.0, -2.0], [0.5, 0.5], [-1.0, 3.0])]
    m, expected = np.zeros(2), np.zeros(2)
    for t, g in enumerate(grads):
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
        mu = 0.9 - 0.4 * t / 5
        m = mu * m - 0.1 * g
        expected = expected + m
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-6)


def test_adam_update_uses_the_beta_1_of_each_step():
    """Bias correction with the current beta_1: 1 - beta_1(t)^(t+1), as PyTorch's Adam does."""
    schedule = OneCycle(start=0.9, peak=0.5, final=0.9, total=10, last_fraction=0.0)
    opt = OneCycleAdam(learning_rate=0.1, beta_2=0.99, epsilon=1e-7, momentum_schedule=schedule)
    w = keras.Variable(np.zeros(2, "float32"))
    grads = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])]
    m, v, expected = np.zeros(2), np.zeros(2), np.zeros(2)
    for t, g in enumerate(grads):
        opt.apply([keras.ops.convert_to_tensor(g.astype("float32"))], [w])
        beta_1 = 0.9 - 0.4 * t / 5
        m = beta_1 * m + (1 - beta_1) * g
        v = 0.99 * v + 0.01 * g**2
        alpha = 0.1 * np.sqrt(1 - 0.99 ** (t + 1)) / (1 - beta_1 ** (t + 1))
        expected = expected - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "nadam"])
def test_compiled_momentum_moves_every_step(name):
    """A fit with steps_per_execution (one graph call per epoch) matches a step-by-step eager fit."""
    spec = optimizer_spec(type=name, momentum=0.9) if name == "sgd" else optimizer_spec(type=name)
    schedule = schedule_spec(type="one_cycle", max_lr=0.05, min_momentum=0.5)
    weights = []
    for eager in (False, True):
        model = tiny_model(make_optimizer(spec, schedule, STEPS_PER_EPOCH, 3))
        per_call = 1 if eager else STEPS_PER_EPOCH
        model.compile(optimizer=model.optimizer, loss="mse", run_eagerly=eager, steps_per_execution=per_call)
        fit(model, 3)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_scheduled_momentum_changes_training():
    spec = schedule_spec(type="one_cycle", max_lr=0.05, max_momentum=0.95, min_momentum=0.5)
    cycled = tiny_model(make_optimizer(optimizer_spec(type="adam"), spec, STEPS_PER_EPOCH, 4))
    constant = tiny_model(
        keras.optimizers.Adam(learning_rate=learning_rate_setting(cycled.optimizer), beta_1=0.95)
    )
    fit(cycled, 4)
    fit(constant, 4)
    assert not np.allclose(cycled.get_weights()[0], constant.get_weights()[0], rtol=1e-4)


# --- save / load ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, schedule",
    [
        ({"type": "sgd", "learning_rate": 0.05}, {"type": "none"}),
        ({"type": "sgd", "learning_rate": 0.05}, {"type": "power", "s": 2, "unit": "epoch"}),
        ({"type": "rmsprop"}, {"type": "exponential", "s": 5, "unit": "step"}),
        ({"type": "adam"}, {"type": "piecewise", "boundaries": [1, 3], "values": [0.01, 0.005, 0.001]}),
        ({"type": "sgd", "momentum": 0.9}, {"type": "one_cycle", "max_lr": 0.05}),
        ({"type": "nadam"}, {"type": "one_cycle", "max_lr": 0.01, "unit": "epoch"}),
        ({"type": "rmsprop", "momentum": 0.5}, {"type": "one_cycle", "max_lr": 0.01}),
        ({"type": "adamax"}, {"type": "one_cycle", "max_lr": 0.01}),
        ({"type": "adamw"}, {"type": "one_cycle", "max_lr": 0.01}),
    ],
)
def test_save_load_continues_at_the_same_rate(tmp_path, optimizer, schedule):
    epochs = 5
    opt = make_optimizer(optimizer_spec(**optimizer), schedule_spec(**schedule), STEPS_PER_EPOCH, epochs)
    original = tiny_model(opt)
    fit(original, 2)
    original.save(tmp_path / "last.keras")
    loaded = keras.models.load_model(tmp_path / "last.keras")

    assert type(loaded.optimizer) is type(original.optimizer)
    assert int(loaded.optimizer.iterations) == 2 * STEPS_PER_EPOCH
    assert float(loaded.optimizer.learning_rate) == float(original.optimizer.learning_rate)
    for epoch in range(epochs + 1):
        lr = epoch_learning_rate(original.optimizer, epoch, STEPS_PER_EPOCH)
        assert epoch_learning_rate(loaded.optimizer, epoch, STEPS_PER_EPOCH) == lr
        assert epoch_momentum(loaded.optimizer, epoch, STEPS_PER_EPOCH) == epoch_momentum(
            original.optimizer, epoch, STEPS_PER_EPOCH
        )

    fit(original, 4, initial_epoch=2)
    fit(loaded, 4, initial_epoch=2)
    assert int(loaded.optimizer.iterations) == 4 * STEPS_PER_EPOCH
    assert float(loaded.optimizer.learning_rate) == float(original.optimizer.learning_rate)
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "power", "s": 3, "c": 0.5},
        {"type": "exponential", "s": 7, "base": 0.5, "unit": "step"},
        {"type": "piecewise", "boundaries": [2, 4], "values": [3.0, 2.0, 1.0]},
        {"type": "one_cycle", "max_lr": 0.1, "last_fraction": 0.2},
    ],
)
def test_schedule_config_round_trip(schedule):
    lr = learning_rate_setting(make_optimizer(optimizer_spec(type="sgd"), schedule_spec(**schedule), 3, 7))
    config_dict = keras.saving.serialize_keras_object(lr)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config_dict)))
    assert type(restored) is type(lr) and restored.get_config() == lr.get_config()
    for step in (0, 1, 5, 11, 20, 40):
        assert float(restored(step)) == float(lr(step))


# --- make_optimizer ------------------------------------------------------------------------

FIELDS = {
    "sgd": {"momentum": 0.8, "nesterov": True},
    "adagrad": {"initial_accumulator_value": 0.2, "epsilon": 1e-6},
    "rmsprop": {"rho": 0.8, "momentum": 0.3, "epsilon": 1e-6},
    "adam": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
    "adamax": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
    "nadam": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
    "adamw": {"weight_decay": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
    "ftrl": {
        "learning_rate_power": -0.3,
        "initial_accumulator_value": 0.2,
        "l1_regularization_strength": 0.01,
        "l2_regularization_strength": 0.02,
    },
}
KERAS_CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
    "adamw": keras.optimizers.AdamW,
    "ftrl": keras.optimizers.Ftrl,
}


def test_every_optimizer_name_is_covered():
    assert set(FIELDS) == set(spec_training.OPTIMIZER_NAMES) == set(KERAS_CLASSES)


@pytest.mark.parametrize("name", spec_training.OPTIMIZER_NAMES)
@pytest.mark.parametrize("clip", ["clipvalue", "clipnorm", "global_clipnorm"])
def test_make_optimizer_passes_every_field(name, clip):
    spec = optimizer_spec(type=name, learning_rate=0.02, **{clip: 0.5}, **FIELDS[name])
    opt = make_optimizer(spec, schedule_spec(type="none"), 4, 3)
    assert type(opt) is KERAS_CLASSES[name]
    assert float(opt.learning_rate) == pytest.approx(0.02)
    for key in ("clipvalue", "clipnorm", "global_clipnorm"):
        assert getattr(opt, key) == (0.5 if key == clip else None)
    for key, value in FIELDS[name].items():
        assert getattr(opt, key) == value, key


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamax", "nadam", "adamw"])
def test_one_cycle_optimizers_keep_the_spec_fields(name):
    spec = optimizer_spec(type=name, clipnorm=1.0, **FIELDS[name])
    opt = make_optimizer(spec, schedule_spec(type="one_cycle", max_lr=0.1), 4, 3)
    assert opt.clipnorm == 1.0
    for key, value in FIELDS[name].items():
        assert getattr(opt, key) == value, key


# --- plateau -------------------------------------------------------------------------------


def plateau(**fields):
    (callback,) = schedule_callbacks(schedule_spec(type="plateau", **fields))
    model = tiny_model(keras.optimizers.SGD(learning_rate=1.0))
    callback.set_model(model)
    callback.on_train_begin()
    return callback, model


def feed(callback, losses, start=0):
    """Epoch ends with these val_loss values; the lr after each."""
    rates = []
    for epoch, loss in enumerate(losses, start):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        rates.append(float(callback.model.optimizer.learning_rate))
    return rates


def test_only_plateau_needs_a_callback():
    for kind in ("none", "power", "exponential"):
        assert schedule_callbacks(schedule_spec(type=kind)) == []
    assert schedule_callbacks(schedule_spec(type="one_cycle", max_lr=0.1)) == []
    callback, _ = plateau(
        factor=0.2, patience=3, monitor="val_loss", min_delta=0.01, cooldown=1, min_lr=0.001
    )
    assert isinstance(callback, PlateauScheduler)
    assert (callback.factor, callback.patience, callback.monitor, callback.cooldown, callback.min_lr) == (
        0.2,
        3,
        "val_loss",
        1,
        0.001,
    )


def test_plateau_reduces_after_patience():
    callback, _ = plateau(factor=0.5, patience=2)
    rates = feed(callback, [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8])
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25])


def test_plateau_min_delta_counts_small_gains_as_none():
    callback, _ = plateau(factor=0.5, patience=2, min_delta=0.1)
    assert feed(callback, [1.0, 0.95, 0.92]) == pytest.approx([1.0, 1.0, 0.5])


def test_plateau_respects_min_lr():
    callback, _ = plateau(factor=0.1, patience=1, min_lr=0.05)
    assert feed(callback, [1.0, 1.0, 1.0, 1.0]) == pytest.approx([1.0, 0.1, 0.05, 0.05])


def test_plateau_cooldown():
    callback, _ = plateau(factor=0.5, patience=1, cooldown=2)
    # without cooldown it would halve every epoch from epoch 1; the cooldown skips every other one
    assert feed(callback, [1.0] * 6) == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125])


def test_plateau_state_survives_a_restart():
    callback, _ = plateau(factor=0.5, patience=3, cooldown=2)
    feed(callback, [1.0, 0.9, 0.9, 0.9, 0.9])  # reduced at epoch 4, cooling down
    feed(callback, [0.9])
    state = json.loads(json.dumps(callback.state_dict()))
    assert state == {"wait": 0, "best": 0.9, "cooldown_counter": 1}

    resumed, model = plateau(factor=0.5, patience=3, cooldown=2)
    model.optimizer.learning_rate = 0.5  # what last.keras restores
    resumed.load_state_dict(state)
    resumed.on_train_begin()  # a new fit() must not forget the restored state
    assert resumed.state_dict() == state
    # cooldown ends at epoch 6, then waits 3 epochs (a fresh callback would reduce at epoch 9)
    expected = [0.5, 0.5, 0.25, 0.25]
    assert feed(resumed, [0.9] * 4, start=6) == pytest.approx(expected)
    assert feed(callback, [0.9] * 4, start=6) == pytest.approx(expected)


def test_plateau_state_of_a_fresh_callback_and_non_finite_best():
    callback, _ = plateau()
    assert callback.state_dict() == {"wait": 0, "best": None, "cooldown_counter": 0}
    feed(callback, [float("nan")])
    assert json.dumps(callback.state_dict(), allow_nan=False)


def test_plateau_in_fit_keeps_its_state_across_fit_calls():
    callback, model = plateau(factor=0.5, patience=1, monitor="loss", min_delta=1e9)
    fit_args = dict(batch_size=BATCH, shuffle=False, verbose=0, callbacks=[callback])
    x, y = data()
    model.fit(x, y, epochs=2, **fit_args)  # epoch 0 sets best; epoch 1 is no improvement: reduce
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)
    model.fit(x, y, epochs=3, initial_epoch=2, **fit_args)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.25)
