"""`dnnlab summary`: the model a spec or a run directory describes, without training it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnlab.data.checked_spec import check_spec
from dnnlab.rundir.directory import RunDir
from dnnlab.spec.phases import pretrain_record


def model_summary(target: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Layers and parameter counts of the model for a spec file or a run directory's config.
    With `model.transfer`, each layer says whether it is `transferred` from the source run and
    `frozen` (for the first freeze_epochs epochs); the counts are those of the first epoch.
    With `training.pretrain`, `pretrain` lists its phases (None without)."""
    config = RunDir(target).config if target.is_dir() else target
    checked = check_spec(config, overrides)
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab.model.build import build_model, count_params, describe_layers

    model = build_model(checked.spec, checked.info.input_shape)
    transfer = checked.spec.model.transfer
    reused: list[str] = []
    if transfer is not None:  # as training starts: the source run's weights in, frozen or not
        from dnnlab.model.transfer import apply_transfer

        reused = apply_transfer(model, transfer)
    frozen = transfer.freeze_epochs if transfer is not None else 0
    counts = count_params(model)
    layers = [
        {**layer, "transferred": layer["name"] in reused, "frozen": layer["name"] in reused and frozen > 0}
        for layer in describe_layers(model)
    ]
    return {
        "name": checked.spec.name,
        "layers": layers,
        "transfer": (
            {"run": transfer.run, "layers": reused, "freeze_epochs": frozen} if transfer is not None else None
        ),
        "pretrain": pretrain_record(checked.spec, checked.info.input_shape),
        "fine_tune_epochs": checked.spec.training.epochs,
        "total_params": counts.total,
        "trainable_params": counts.trainable,
        "non_trainable_params": counts.non_trainable,
    }
