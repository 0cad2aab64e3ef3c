"""From a YAML file to a resolved, checked spec: what `check`, `summary` and `train` share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnnlab import checks, data
from dnnlab.config import Spec, load_spec, resolve
from dnnlab.errors import ConfigError


@dataclass(frozen=True)
class CheckedSpec:
    spec: Spec  # every default filled in, including what the dataset decides
    info: data.DatasetInfo
    warnings: list[checks.Finding]


def check_spec(path: Path | str, overrides: list[str] | None = None) -> CheckedSpec:
    """Load, override, validate and resolve a spec without loading its data or TensorFlow."""
    spec = load_spec(path, overrides)
    info = data.describe(spec.data)
    resolved = resolve(spec, info.task, info.num_classes)
    try:
        findings = checks.validate(resolved)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return CheckedSpec(resolved, info, findings)
