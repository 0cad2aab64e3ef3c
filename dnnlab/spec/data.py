"""The `data:` section: named sets, npz, csv and synthetic sources, filters and splits."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dnnlab.spec.base import Strict
from dnnlab.spec.wording import did_you_mean

# --- data ----------------------------------------------------------------------------------

KerasDataset = Literal["mnist", "fashion_mnist", "cifar10", "cifar100"]


SklearnDataset = Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]


KERAS_DATASETS: tuple[str, ...] = typing.get_args(KerasDataset)


SKLEARN_DATASETS: tuple[str, ...] = typing.get_args(SklearnDataset)


TABLE_DATASETS: tuple[str, ...] = ("penguins",)  # packaged tables: `penguins` means `{type: penguins}`


NAMED_DATASETS = KERAS_DATASETS + SKLEARN_DATASETS + TABLE_DATASETS


class NpzSource(Strict):
    type: Literal["npz"]
    path: str = Field(
        description="file with x_train, y_train and optionally x_test, y_test; x_train (and x_test) "
        "alone: inputs without labels, for data.task: autoencoder"
    )


ColumnType = Literal["numeric", "categorical", "binary"]


MissingPolicy = Literal["mean", "median", "most_frequent", "constant", "drop"]


class ColumnSpec(Strict):
    """How one feature column of a table becomes numbers; what is left out is inferred."""

    type: ColumnType | None = Field(
        None,
        description="default: inferred: a column of text is categorical, of numbers numeric, with "
        "exactly two distinct values binary",
    )
    missing: MissingPolicy | None = Field(
        None,
        description="what a missing cell becomes; default: numeric mean, binary most_frequent, "
        "categorical constant (an all-zero one-hot row); drop: the row is left out",
    )
    indicator: bool = Field(False, description="add a 0/1 column that is 1 where the cell was missing")


Features = Annotated[
    list[str] | None,
    Field(
        min_length=1, description="the feature columns, in this order (default: every column but the target)"
    ),
]
Dropped = Annotated[list[str] | None, Field(description="columns left out (exclusive with features)")]
Columns = Annotated[
    dict[str, ColumnSpec] | None,
    Field(description="per feature column: type, missing, indicator (the resolved spec lists every one)"),
]


class TableSource(Strict):
    """What a table source shares (its fields follow each source's own): which columns are
    features (`features` or `drop`) and how each is encoded (`columns`)."""

    @model_validator(mode="after")
    def _features_or_drop(self) -> TableSource:
        if self.features is not None and self.drop is not None:
            raise PydanticCustomError(
                "table_keys", "set only one of features, drop; features lists the columns to keep"
            )
        return self

    def is_table(self) -> bool:
        """Whether the spec chose columns (which makes a CSV a table whatever its cells hold)."""
        return self.features is not None or self.drop is not None or self.columns is not None


class CsvSource(TableSource):
    type: Literal["csv"]
    path: str
    target: str | None = Field(
        description="name of the label column; null: no labels (inputs for data.task: autoencoder)"
    )
    features: Features = None
    drop: Dropped = None
    columns: Columns = None


class PenguinsSource(TableSource):
    """The Palmer penguins table packaged with dnnlab; `dataset: penguins` is this with its defaults."""

    type: Literal["penguins"]
    target: str = Field("species", description="species (3 classes); body_mass_g for a regression")
    features: Features = None
    drop: Dropped = None
    columns: Columns = None


class SyntheticSource(Strict):
    type: Literal["synthetic"]
    shape: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [28, 28])
    classes: int = Field(10, ge=2)
    train: int = Field(1000, gt=0)
    test: int = Field(200, ge=0)
    task: Literal["classification", "regression"] = "classification"


FileSource = Annotated[NpzSource | CsvSource | PenguinsSource | SyntheticSource, Field(discriminator="type")]


def _named_dataset(value: str) -> str:
    if value not in NAMED_DATASETS:
        raise PydanticCustomError(
            "unknown_dataset",
            "unknown dataset '{value}'{hint}; expected one of: {allowed}, "
            "or a mapping with type npz, csv, penguins or synthetic",
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
        "(an autoencoder, or training.pretrain, trains on them too); scaling is fitted on all of them",
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
        if isinstance(value, str) and value in TABLE_DATASETS:
            return {"type": value}  # a table's columns are resolved into the mapping
        return _named_dataset(value) if isinstance(value, str) else value
