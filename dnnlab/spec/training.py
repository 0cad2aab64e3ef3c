"""The `training:` section: optimizers, learning-rate schedules, early stopping, diagnostics
and tracking.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
)

from dnnlab.spec.base import Strict, Variants, type_names
from dnnlab.spec.keras_names import LOSS_NAMES, METRIC_NAMES

# --- training ------------------------------------------------------------------------------


class _Optimizer(Strict):
    learning_rate: float = Field(0.001, gt=0)
    clipvalue: float | None = Field(None, gt=0)
    clipnorm: float | None = Field(None, gt=0)
    global_clipnorm: float | None = Field(None, gt=0)


class SGD(_Optimizer):
    type: Literal["sgd"]
    learning_rate: float = Field(0.01, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdaGrad(_Optimizer):
    type: Literal["adagrad"]
    initial_accumulator_value: float = Field(0.1, ge=0)
    epsilon: float = Field(1e-7, gt=0)


class RMSProp(_Optimizer):
    type: Literal["rmsprop"]
    rho: float = Field(0.9, gt=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class Adam(_Optimizer):
    type: Literal["adam", "adamax", "nadam"]
    beta_1: float = Field(0.9, gt=0, lt=1)
    beta_2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class AdamW(_Optimizer):
    type: Literal["adamw"]
    weight_decay: float = Field(0.004, ge=0)
    beta_1: float = Field(0.9, gt=0, lt=1)
    beta_2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class Ftrl(_Optimizer):
    type: Literal["ftrl"]
    learning_rate_power: float = Field(-0.5, le=0)
    initial_accumulator_value: float = Field(0.1, ge=0)
    l1_regularization_strength: float = Field(0.0, ge=0)
    l2_regularization_strength: float = Field(0.0, ge=0)


Optimizer = Variants(SGD, AdaGrad, RMSProp, Adam, AdamW, Ftrl)


OPTIMIZER_NAMES = type_names(Optimizer)


Unit = Literal["epoch", "step"]


class NoSchedule(Strict):
    type: Literal["none"]


class PowerSchedule(Strict):
    """lr0 / (1 + t/s)^c"""

    type: Literal["power"]
    s: float = Field(20, gt=0)
    c: float = Field(1.0, gt=0)
    unit: Unit = "epoch"


class ExponentialSchedule(Strict):
    """lr0 * base^(t/s)"""

    type: Literal["exponential"]
    s: float = Field(20, gt=0)
    base: float = Field(0.1, gt=0)
    unit: Unit = "epoch"


class PiecewiseSchedule(Strict):
    """values[i] while t < boundaries[i]; values[-1] after the last boundary"""

    type: Literal["piecewise"]
    boundaries: list[int]
    values: list[Annotated[float, Field(gt=0)]]
    unit: Unit = "epoch"


class PlateauSchedule(Strict):
    """Performance scheduling: multiply lr by `factor` when `monitor` stops improving."""

    type: Literal["plateau"]
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(5, ge=0)
    monitor: str = "val_loss"
    min_delta: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class OneCycleSchedule(Strict):
    """Smith's 1cycle: lr up from start_lr to max_lr over the first half, down to start_lr
    over the second, then to final_lr in the last few percent; momentum the opposite way."""

    type: Literal["one_cycle"]
    max_lr: float = Field(gt=0)
    start_lr: float | None = Field(None, gt=0, description="default: max_lr / 10")
    final_lr: float | None = Field(None, gt=0, description="default: start_lr / 1000")
    last_fraction: float = Field(0.1, ge=0, lt=1, description="share of training for the final drop")
    max_momentum: float = Field(0.95, ge=0, lt=1)
    min_momentum: float = Field(0.85, ge=0, lt=1)
    unit: Unit = "step"


Schedule = Variants(
    NoSchedule, PowerSchedule, ExponentialSchedule, PiecewiseSchedule, PlateauSchedule, OneCycleSchedule
)


SCHEDULE_NAMES = type_names(Schedule)


class EarlyStopping(Strict):
    monitor: str = "val_loss"
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = True


class Diagnostics(Strict):
    """Per-layer gradient and activation statistics during training (layers.csv, TensorBoard)."""

    every: int = Field(1, ge=1, description="measure every N epochs (or steps), and at initialization")
    unit: Unit = "epoch"
    probe_size: int = Field(256, ge=1, description="rows of the fixed, seeded probe batch (training split)")
    histograms: bool = Field(True, description="also write activation and gradient histograms to TensorBoard")


class MlflowTracking(Strict):
    """Log the run to MLflow while it trains (needs the dnnlab[mlflow] extra)."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store")
    experiment: str = Field("dnnlab", description="MLflow experiment name")


class GreedyPretrain(Strict):
    """Greedy layer-wise pretraining (Géron, Hands-On Machine Learning, ch. 11 and 17): each hidden
    dense layer in turn trained as a one-layer autoencoder of the codes below it, then the whole
    network fine-tuned for `training.epochs`."""

    method: Literal["greedy_layerwise"]
    epochs_per_layer: int = Field(ge=1, description="epochs of each layer's autoencoder")


class Training(Strict):
    epochs: int = Field(10, ge=1, description="with pretrain: the fine-tune's epochs only")
    batch_size: int = Field(32, ge=1)
    loss: Literal[LOSS_NAMES] | None = Field(None, description="inferred from the task when omitted")
    metrics: list[Literal[METRIC_NAMES]] | None = Field(
        None, description="default: [accuracy] for classification, [mae] for regression"
    )
    monitor: str = Field("val_loss", description="metric that picks checkpoints/best.keras")
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="nadam"))
    schedule: Schedule = Field(default_factory=lambda: NoSchedule(type="none"))
    early_stopping: EarlyStopping | None = None
    deterministic: bool = Field(True, description="seed everything and enable op determinism")
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="batches per compiled call; auto: a few hundred, within one epoch"
    )
    intra_op_threads: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        "auto",
        description="threads inside one TensorFlow op; auto: see dnnlab/training/execution.py; "
        "0: TensorFlow's default (all cores)",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA; auto: on when the planned epochs finish sooner with it (no rrelu)"
    )
    diagnostics: Diagnostics | None = Field(None, description="per-layer statistics: see `dnnlab diagnose`")
    mlflow: MlflowTracking | None = Field(None, description="log live to MLflow: see `dnnlab mlflow-log`")
    pretrain: GreedyPretrain | None = Field(
        None, description="greedy layer-wise pretraining before the epochs: see README, Pretraining"
    )
