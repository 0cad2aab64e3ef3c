"""The YAML spec: from a file to a resolved, checked spec, which `check`, `summary` and `train` share.

`models` holds the pydantic models and the vocabulary, `loading` reads files (`extends:`
included), overrides and serializes, `wording` turns validation errors into one line, and
`checks` holds the rules that span fields and the notes' advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnnlab import data
from dnnlab.errors import ConfigError
from dnnlab.spec.checks import Finding, validate
from dnnlab.spec.loading import (
    json_schema,
    load_spec,
    parse_spec,
    read_yaml,
    spec_hash,
    spec_to_dict,
    spec_to_yaml,
)
from dnnlab.spec.models import Spec, resolve

__all__ = [
    "CheckedSpec",
    "Finding",
    "Spec",
    "check_spec",
    "json_schema",
    "load_spec",
    "parse_spec",
    "read_yaml",
    "resolve",
    "spec_hash",
    "spec_to_dict",
    "spec_to_yaml",
]


@dataclass(frozen=True)
class CheckedSpec:
    spec: Spec  # every default filled in, including what the dataset decides
    info: data.DatasetInfo
    warnings: list[Finding]


def check_spec(path: Path | str, overrides: list[str] | None = None) -> CheckedSpec:
    """Load, override, validate and resolve a spec without loading its data or TensorFlow."""
    spec = load_spec(path, overrides)
    info = data.describe(spec.data)
    resolved = resolve(spec, info.task, info.num_classes)
    try:
        findings = validate(resolved)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return CheckedSpec(resolved, info, findings)
