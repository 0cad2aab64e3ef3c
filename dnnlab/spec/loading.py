"""From YAML files and `-o` overrides to a validated Spec, and back to plain data.

A spec file may `extends:` another; the chain is merged into one raw mapping, the overrides
are set on it, and the result is validated once. Every key remembers which file or override
set it (`Origins`), so an error names the place to fix rather than the file first given.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dnnlab.errors import ConfigError
from dnnlab.files.safe_yaml import loads, read_yaml_file
from dnnlab.spec.models import Spec
from dnnlab.spec.wording import Key, format_validation_error, short

EXTENDS = "extends"


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file within dnnlab's caps (see dnnlab.files.safe_yaml); a missing, oversized or
    malformed file is a ConfigError."""
    return read_yaml_file(path)


# --- where each key came from --------------------------------------------------------------


class Origins:
    """Which file or override set each key; a key nobody set belongs to `default`."""

    def __init__(self, default: str) -> None:
        self.default = default
        self._labels: dict[Key, str] = {}

    def record(self, key: Key, label: str) -> None:
        """`label` set `key` and everything below it (replacing what set it before)."""
        for known in [k for k in self._labels if k[: len(key)] == key]:
            del self._labels[known]
        self._labels[key] = label

    def of(self, key: Key) -> str:
        """Who set `key`: its nearest recorded ancestor, else the latest setter of a key below
        it (an error about a whole mapping, e.g. its unknown `type`), else the default."""
        for depth in range(len(key), 0, -1):
            if key[:depth] in self._labels:
                return self._labels[key[:depth]]
        below = [label for known, label in self._labels.items() if known[: len(key)] == key]
        return below[-1] if below else self.default


# --- extends -------------------------------------------------------------------------------


def _as_mapping(value: Any) -> Any:
    """A shorthand string (`optimizer: nadam`) as the mapping it stands for."""
    return {"type": value} if isinstance(value, str) else value


def merge(base: dict[str, Any], top: dict[str, Any], label: str, origins: Origins, at: Key = ()) -> dict:
    """`top` over `base`: mappings merge key by key; a list or scalar replaces, and so does a
    mapping of another `type` (sgd over nadam must not inherit nadam's beta_1)."""
    merged = dict(base)
    for key, value in top.items():
        below = _as_mapping(merged.get(key)) if isinstance(value, dict) else None
        if isinstance(below, dict) and value.get("type", below.get("type")) == below.get("type"):
            merged[key] = merge(below, value, label, origins, (*at, key))
        else:
            merged[key] = value
            origins.record((*at, key), label)
    return merged


def _read_chain(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[Path, Any]]:
    """(file, content) from the first ancestor to `path`, each without its `extends` key."""
    raw = read_yaml(path)
    if not isinstance(raw, dict) or EXTENDS not in raw:
        return [(path, raw)]
    raw = dict(raw)
    target = raw.pop(EXTENDS)
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(
            f"{path}: extends: expected the path of a spec file, e.g. extends: base.yaml; received {target!r}"
        )
    parent = Path(os.path.normpath(path.parent / target))
    seen = (*chain, path)
    if any(parent.resolve() == p.resolve() for p in seen):
        cycle = " -> ".join(str(p) for p in (*seen, parent))
        raise ConfigError(f"{path}: extends: {cycle} is a cycle; a spec cannot extend itself")
    if not parent.is_file():
        raise ConfigError(f"{path}: extends: {parent}: no such file")
    ancestors = _read_chain(parent, seen)
    if not isinstance(ancestors[-1][1], dict):
        kind = "empty" if ancestors[-1][1] is None else type(ancestors[-1][1]).__name__
        raise ConfigError(f"{parent}: expected a YAML mapping of spec keys to extend; received {kind}")
    return [*ancestors, (path, raw)]


def read_spec_file(path: Path) -> tuple[Any, Origins]:
    """The raw mapping of a spec file with its `extends:` chain merged in, and who set what."""
    chain = _read_chain(path)
    origins = Origins(str(path))
    if len(chain) == 1:
        return chain[0][1], origins
    raw: dict[str, Any] = {}
    for source, content in chain:
        raw = merge(raw, content, str(source), origins)
    return raw, origins


# --- overrides -----------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.optimizer.learning_rate=0.01' -> (['training', 'optimizer', 'learning_rate'], 0.01)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {short(text)}: expected KEY=VALUE, e.g. training.epochs=5")
    try:
        value = loads(raw) if raw.strip() else None
    except ConfigError as exc:
        raise ConfigError(f"override {short(text)}: {exc}") from None
    return key.strip().split("."), value


def _default_mapping(path: list[str]) -> dict[str, Any]:
    """The default of a section the spec leaves out (e.g. training.optimizer -> nadam), so an
    override can set one key of it. Of a section with a `type`, only the type and what its
    default sets beyond that type's own defaults: `-o training.optimizer.type=sgd` must not carry
    nadam's beta_1 into sgd."""
    model: Any = Spec
    default: Any = None
    for part in path:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return {}
        field = fields[part]
        default = field.get_default(call_default_factory=True)
        model = type(default) if isinstance(default, BaseModel) else None
    if not isinstance(default, BaseModel):
        return {}
    dumped = default.model_dump(mode="json")
    if "type" not in dumped:
        return dumped
    try:
        own = type(default).model_validate({"type": dumped["type"]}).model_dump(mode="json")
    except ValidationError:  # the type needs more than its name: keep every field
        return dumped
    return {key: value for key, value in dumped.items() if key == "type" or own.get(key) != value}


def apply_overrides(raw: Any, overrides: list[str], origins: Origins | None = None) -> Any:
    """Set each dotted key in the raw mapping, creating or expanding mappings on the way."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for depth, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if isinstance(child, str):
                child = {"type": child}  # `activation: elu` expands to set `activation.alpha`
            if not isinstance(child, dict):
                child = _default_mapping(path[: depth + 1])
            node[part] = child
            node = child
        node[path[-1]] = value
        if origins is not None:
            origins.record(tuple(path), f"-o {text}")
    return raw


# --- validation ----------------------------------------------------------------------------


def parse_spec(raw: Any, source: str | Origins = "") -> Spec:
    """Validate a raw mapping into a Spec; errors become one ConfigError line that starts with
    the file (or the `-o` override) that set the failing key."""
    origins = source if isinstance(source, Origins) else Origins(source)
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else type(raw).__name__
        where = origins.default
        raise ConfigError(
            f"{where + ': ' if where else ''}expected a YAML mapping with keys data, model, "
            f"training; received {kind}"
        )
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Spec, origins.of)) from None


def load_spec(path: Path | str, overrides: list[str] | None = None) -> Spec:
    """Read a spec file (and what it extends), apply the overrides and validate."""
    path = Path(path)
    raw, origins = read_spec_file(path)
    if overrides:
        if not isinstance(raw, dict):
            parse_spec(raw, origins)
        raw = apply_overrides(raw, overrides, origins)
    return parse_spec(raw, origins)


# --- plain data ----------------------------------------------------------------------------


def _type_first(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = {"type": value["type"]} if "type" in value else {}
        ordered.update({k: _type_first(v) for k, v in value.items() if k != "type"})
        return ordered
    if isinstance(value, list):
        return [_type_first(v) for v in value]
    return value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The spec as plain data, every default filled in (what config.yaml records)."""
    return _type_first(spec.model_dump(mode="json"))


def spec_to_yaml(spec: Spec) -> str:
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False)


def spec_hash(spec: Spec) -> str:
    """A stable hash of the resolved spec as config.yaml records it (run.json's config_hash)."""
    return _mapping_hash(spec_to_dict(spec))


def _mapping_hash(mapping: Any) -> str:
    canonical = json.dumps(mapping, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# Keys a run's config.yaml may predate, and the value that stands for what such a run did.
_PREDATING_KEYS = {
    # before data.split_seed, the run's seed decided the split
    ("data", "split_seed"): lambda raw: raw.get("seed", 42),
}


def read_run_spec(path: Path) -> tuple[Spec, str]:
    """A run's config.yaml as a Spec, and the hash of the mapping in the file.

    The hash is of what the file says, not of the Spec it parses into, so an unedited run of an
    older dnnlab (whose spec had fewer keys) still matches its run.json. Keys a run predates get
    the value that reproduces what that run did, never a newer default.
    """
    raw = read_yaml(path)
    digest = _mapping_hash(raw)
    if isinstance(raw, dict):
        for (section, key), value in _PREDATING_KEYS.items():
            if isinstance(raw.get(section), dict) and key not in raw[section]:
                raw = {**raw, section: {**raw[section], key: value(raw)}}
    return parse_spec(raw, str(path)), digest


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors; a file may also name a spec it `extends`."""
    schema = Spec.model_json_schema()
    schema["title"] = "dnnlab spec"
    schema["properties"] = {
        EXTENDS: {
            "type": "string",
            "title": "Extends",
            "description": "path of a spec file (relative to this one) whose keys this spec "
            "inherits and overrides",
        },
        **schema["properties"],
    }
    return schema
