"""What every section of the schema is built from: strict models (unknown keys are errors),
variants tagged by `type` with a string as shorthand, and the rule for names.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from dnnlab.spec.wording import members, type_tags

# A run's or sweep's name becomes a folder name inside the runs folder: no separators, no dot
# or dash first (no `..`, no option look-alike), and short enough for any file system.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, with a did-you-mean; no float may be
    inf or nan (YAML's `.inf`, or `1e999`, which pydantic would read as inf)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def shorthand(value: Any) -> Any:
    """`relu` means `{type: relu}`."""
    return {"type": value} if isinstance(value, str) else value


def Variants(*models: type[BaseModel]) -> Any:
    """A union of models chosen by their `type` field, accepting the string shorthand."""
    return Annotated[Union[models], Field(discriminator="type"), BeforeValidator(shorthand)]  # noqa: UP007


def type_names(annotation: Any) -> tuple[str, ...]:
    """Every `type` a union of models accepts, in declaration order."""
    return tuple(tag for model in members(annotation) for tag in type_tags(model))
