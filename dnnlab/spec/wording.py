"""One-line errors for a spec: the dotted key, what was received, what is allowed.

Pydantic reports a location such as ('model', 'compact', 'hidden', 0); these functions follow
it through the spec models (given as `root`) to the key a user wrote, 'model.hidden[0]', and
to the keys allowed where an unknown one appears. Nothing here imports the models themselves,
so the models can use `did_you_mean` in their own validators.
"""

from __future__ import annotations

import difflib
import reprlib
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

Key = tuple[Any, ...]  # a user-facing key: ('model', 'hidden', 0)


def did_you_mean(value: Any, choices: Any) -> str:
    """' (did you mean 'relu'?)' when a close choice exists, else ''."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def members(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in members(arg)]


def type_tags(model: type[BaseModel]) -> tuple[str, ...]:
    """The values a model's `type: Literal[...]` field accepts; () for a model without one."""
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation) if field is not None else ()


_FORM_TAGS = {"compact": "CompactModel", "explicit": "ExplicitModel"}


def _walk(loc: Key, root: type[BaseModel]) -> tuple[Key, type[BaseModel] | None]:
    """Follow a pydantic error location through the models below `root`.

    Returns the user-facing key (union tags and pydantic's branch names dropped) and the
    model that owns the last mapping, so an unknown key can list the keys allowed there.
    """
    models: list[type[BaseModel]] = [root]
    parts: list[Any] = []
    mapping_key = False  # the part after a `dict[str, Model]` field is a key the user chose
    for part in loc:
        if isinstance(part, int) or mapping_key:
            parts.append(part)
            mapping_key = False
            continue
        if part in _FORM_TAGS:
            models = [m for m in models if m.__name__ == _FORM_TAGS[part]] or models
            continue
        if part in ("named", "file") or "[" in part or part.startswith("function-"):
            continue
        tagged = [m for m in models if part in type_tags(m)]
        if tagged and not any(part in m.model_fields for m in models):
            models = tagged
            continue
        parts.append(part)
        fields = [m.model_fields[part].annotation for m in models if part in m.model_fields]
        mapping_key = any(_is_mapping(annotation) for annotation in fields)
        models = [c for annotation in fields for c in members(annotation)]
    return tuple(parts), (models[0] if len(models) == 1 else None)


def _is_mapping(annotation: Any) -> bool:
    """Whether an annotation (through Optional and Annotated) is a dict."""
    if typing.get_origin(annotation) is dict:
        return True
    return any(_is_mapping(arg) for arg in typing.get_args(annotation))


def error_key(loc: Key, root: type[BaseModel]) -> Key:
    """('model', 'compact', 'hidden', 0) -> ('model', 'hidden', 0)."""
    return _walk(loc, root)[0]


def dotted(key: Key) -> str:
    """('model', 'hidden', 0) -> 'model.hidden[0]'; a key a user could not type as it prints
    (empty, spaces around it, a newline) is quoted, so the message stays one readable line."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = str(part)
        name = name if name and name.isprintable() and name.strip() == name else repr(name)
        out += f".{name}" if out else name
    return out or "(top level)"


KERAS2_RENAMES = {
    "lr": " (Keras 3 calls it 'learning_rate')",
    "decay": " (Keras 3 ignores decay; use training.schedule, e.g. {type: power, s: ...})",
}


def describe_error(error: dict[str, Any], root: type[BaseModel]) -> str:
    """One line for one pydantic error: the dotted key, what was received, what is allowed."""
    loc = error["loc"]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    received = error.get("input")
    where = dotted(error_key(loc, root))
    where = where if len(where) <= 120 else where[:117] + "..."  # a key can be any YAML string
    if kind == "extra_forbidden":
        key = loc[-1]
        owner = _walk(loc[:-1], root)[1]
        allowed = list(owner.model_fields) if owner else []
        hint = KERAS2_RENAMES.get(key) or did_you_mean(key, allowed)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key{hint}{listing}"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = ctx.get("tag")
        hint = did_you_mean(tag, tags)
        return f"{where}: unknown type {short(tag)}{hint}; expected one of: {', '.join(tags)}"
    if kind == "literal_error":
        allowed = [e.strip(" '") for e in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        allowed = [a for a in allowed if a]
        return (
            f"{where}: invalid value {short(received)}{did_you_mean(received, allowed)}; "
            f"expected one of: {', '.join(allowed)}"
        )
    if kind == "union_tag_not_found":
        return f"{where}: missing key 'type'"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind in ("unknown_dataset", "table_keys"):
        return f"{where}: {error['msg']}"
    message = error["msg"]
    return f"{where}: {message[0].lower() + message[1:]}; received {short(received)}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 50, 50
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4


def short(value: Any) -> str:
    """A repr of at most 60 characters that looks at only the first few items of a container, so
    a value of thousands of items (aliases expanded, nested lists) costs no more than a small one."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(
    exc: ValidationError, root: type[BaseModel], source: str | Callable[[Key], str] = ""
) -> str:
    """The first error as one line (later ones are usually consequences), plus a count.

    `source` prefixes the line: a file name, or a function of the failing key that names the
    file or `-o` override which set it.
    """
    errors = _dedupe(exc.errors(include_url=False), root)
    first = errors[0]
    line = describe_error(first, root)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    prefix = source(error_key(first["loc"], root)) if callable(source) else source
    return f"{prefix}: {line}" if prefix else line


def _dedupe(errors: list[dict[str, Any]], root: type[BaseModel]) -> list[dict[str, Any]]:
    """Prefer the most specific error for a location; drop union noise for the same key."""
    seen: dict[Key, dict[str, Any]] = {}
    for error in errors:
        seen.setdefault(error_key(error["loc"], root), error)
    return list(seen.values())
