"""The `data:` section: named sets, npz, csv and synthetic sources, filters and splits."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from dnnlab.spec.base import Strict
from dnnlab.spec.wording import did_you_mean

# --- data ----------------------------------------------------------------------------------

KerasDataset = Literal["mnist", "fashion_mnist", "cifar10", "cifar100"]


SklearnDataset = Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]


KERAS_DATASETS: tuple[str, ...] = typing.get_args(KerasDataset)


SKLEARN_DATASETS: tuple[str, ...] = typing.get_args(SklearnDataset)


NAMED_DATASETS = KERAS_DATASETS + SKLEARN_DATASETS


class NpzSource(Strict):
    type: Literal["npz"]
    path: str = Field(
        description="file with x_train, y_train and optionally x_test, y_test; x_train (and x_test) "
        "alone: inputs without labels, for data.task: autoencoder"
    )


class CsvSource(Strict):
    type: Literal["csv"]
    path: str
    target: str | None = Field(
        description="name of the label column; null: no labels (inputs for data.task: autoencoder)"
    )


class SyntheticSource(Strict):
    type: Literal["synthetic"]
    shape: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [28, 28])
    classes: int = Field(10, ge=2)
    train: int = Field(1000, gt=0)
    test: int = Field(200, ge=0)
    task: Literal["classification", "regression"] = "classification"


FileSource = Annotated[NpzSource | CsvSource | SyntheticSource, Field(discriminator="type")]


def _named_dataset(value: str) -> str:
    if value not in NAMED_DATASETS:
        raise PydanticCustomError(
            "unknown_dataset",
            "unknown dataset '{value}'{hint}; expected one of: {allowed}, "
            "or a mapping with type npz, csv or synthetic",
            {
                "value": value if len(value) <= 60 else value[:57] + "...",
                "hint": did_you_mean(value, NAMED_DATASETS),
                "allowed": ", ".join(NAMED_DATASETS),
            },
        )
    return value


class DataSpec(Strict):
    dataset: Annotated[
        Annotated[str, Tag("named")] | Annotated[FileSource, Tag("file")],
        Discriminator(lambda v: "named" if isinstance(v, str) else "file"),
    ]
    validation: Annotated[int, Field(ge=0)] | Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="int: the first N training rows; float in (0, 1): that fraction"
    )
    test: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="test fraction for sources that ship no test split"
    )
    scaling: Literal["none", "unit", "standardize"] = "standardize"
    task: Literal["classification", "regression", "autoencoder"] | None = Field(
        None, description="autoencoder: the target is the input itself (labels are not read)"
    )
    unlabeled: Literal["rest"] | None = Field(
        None,
        description="rest: the training rows beyond train_size serve pretraining without their labels "
        "(an autoencoder trains on them too); scaling is fitted on all of them",
    )
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=2, description="keep only these classes (two or more), relabelled 0..k-1"
    )
    train_size: int | None = Field(None, gt=0, description="keep the first N training rows")
    split_seed: int = Field(
        42,
        ge=0,
        description="draws which rows are held out for test (and synthetic data); independent of "
        "`seed`, which draws initialization, dropout masks and data order, so runs that differ only "
        "in `seed` see the same validation and test rows and the same scaling statistics",
    )

    @field_validator("dataset", mode="before")
    @classmethod
    def _check_named(cls, value: Any) -> Any:
        return _named_dataset(value) if isinstance(value, str) else value
