"""`dnnlab summary`: the model a spec or a run directory describes, without training it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnlab.data.checked_spec import check_spec
from dnnlab.rundir.directory import RunDir


def model_summary(target: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Layers and parameter counts of the model for a spec file or a run directory's config."""
    config = RunDir(target).config if target.is_dir() else target
    checked = check_spec(config, overrides)
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab.model.build import build_model, count_params, describe_layers

    model = build_model(checked.spec, checked.info.input_shape)
    counts = count_params(model)
    return {
        "name": checked.spec.name,
        "layers": describe_layers(model),
        "total_params": counts.total,
        "trainable_params": counts.trainable,
        "non_trainable_params": counts.non_trainable,
    }
