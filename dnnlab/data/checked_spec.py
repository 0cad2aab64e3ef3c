"""A spec checked against its dataset: load, override, validate and resolve without loading
the data or TensorFlow; `check`, `summary`, `train` and `sweep` share it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from dnnlab.data import datasets
from dnnlab.errors import ConfigError
from dnnlab.spec.checks import Finding, check_output_covers_classes, validate
from dnnlab.spec.loading import (
    Origins,
    apply_overrides,
    json_schema,
    load_spec,
    parse_spec,
    read_run_spec,
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
    "check_spec_mapping",
    "json_schema",
    "load_spec",
    "parse_spec",
    "read_run_spec",
    "read_yaml",
    "resolve",
    "spec_hash",
    "spec_to_dict",
    "spec_to_yaml",
]


@dataclass(frozen=True)
class CheckedSpec:
    spec: Spec  # every default filled in, including what the dataset decides
    info: datasets.DatasetInfo
    warnings: list[Finding]


def check_spec(path: Path | str, overrides: list[str] | None = None) -> CheckedSpec:
    """Load, override, validate and resolve a spec without loading its data or TensorFlow."""
    return _checked(load_spec(path, overrides), path)


def check_spec_mapping(raw: dict, overrides: list[str], source: str) -> CheckedSpec:
    """`check_spec` for a spec held as a mapping (a sweep file's inline spec); `source` names it
    in errors. The mapping itself is left unchanged."""
    origins = Origins(source)
    return _checked(parse_spec(apply_overrides(copy.deepcopy(raw), overrides, origins), origins), source)


def _checked(spec: Spec, path: Path | str) -> CheckedSpec:
    info = datasets.describe(spec.data)
    columns = None
    if info.table is not None:  # what was inferred, so that config.yaml records every column's type
        columns = {
            c.name: {"type": c.type, "missing": c.missing, "indicator": c.indicator}
            for c in info.table.columns
        }
    resolved = resolve(spec, info.task, info.num_classes, columns)
    try:
        for finding in check_output_covers_classes(resolved, info.num_classes):
            raise ConfigError(str(finding))
        findings = validate(resolved, info.input_shape)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return CheckedSpec(resolved, info, findings)
