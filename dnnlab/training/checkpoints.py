"""A run's checkpoints under damage: which files an epoch's commit keeps, and which commit a
resume can trust.

Every checkpoint is its own file (last.keras and best.keras are copies, not hard links), so a
truncated or overwritten one damages nothing else. The two latest epoch checkpoints are kept,
and state.json records the commit before the latest (`previous`): when the latest checkpoint
does not load, or its optimizer's step count disagrees with state.json, or metrics.csv no longer
holds the rows that commit wrote, resume falls back one epoch (as Keras's
`BackupAndRestore(double_checkpoint=True)`) and trains that epoch again. See docs/faults.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from dnnlab.errors import ModelFileError, RunDirError
from dnnlab.files.atomic import atomic_copy
from dnnlab.model.build import load_model
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import TrainState
from dnnlab.spec.models import Spec

log = logging.getLogger("dnnlab")


def keep_only(run: RunDir, names: set[str]) -> None:
    """Delete the epoch checkpoints not named in `names` (the latest commit's and the one before)."""
    for path in run.checkpoints.glob("epoch-*.keras"):
        if path.name not in names:
            path.unlink(missing_ok=True)


def expected_iterations(spec: Spec, state: TrainState, steps_per_epoch: int) -> int:
    """The optimizer steps the checkpoint of `state` has taken. Transfer learning compiles a new
    optimizer (counting from 0) when it unfreezes after `freeze_epochs` epochs."""
    epochs = state.epochs_done
    transfer = spec.model.transfer
    if transfer is not None and transfer.freeze_epochs > 0 and state.transfer and state.transfer.unfrozen:
        epochs -= transfer.freeze_epochs
    return epochs * steps_per_epoch


@dataclass
class Resumed:
    """The commit a resume continues from, and its model loaded from its checkpoint."""

    state: TrainState
    model: keras.Model


def load_committed(run: RunDir, spec: Spec, state: TrainState, steps_per_epoch: int) -> Resumed:
    """The latest commit whose checkpoint and metrics.csv check out, with its model: `state`, or
    with a one-line warning the commit before it. Neither: a one-line RunDirError."""
    check_consistent(run, state)
    latest = _try(run, spec, state, steps_per_epoch)
    if isinstance(latest, Resumed):
        return latest
    if state.previous is None:
        raise RunDirError(f"{run.path}: cannot resume: {latest} (no earlier commit to fall back to)")
    older_state = TrainState.from_dict(state.previous, spec.training.monitor)
    older = _try(run, spec, older_state, steps_per_epoch)
    if isinstance(older, str):
        raise RunDirError(f"{run.path}: cannot resume: {latest}; and the commit before it: {older}")
    log.warning(
        "%s; resuming from the commit before it (%s after %d epochs), so epoch %d is trained again",
        latest,
        older_state.checkpoint,
        older_state.epochs_done,
        state.epochs_done,
    )
    return older


def check_consistent(run: RunDir, state: TrainState) -> None:
    """Refuse a state.json whose fields disagree with each other (edited or damaged): it cannot
    say which epoch the run is at. Files of older versions lack the fields checked here."""
    if state.metrics_rows is None:
        return
    previous = state.previous or {}
    agree = (
        state.metrics_rows == state.epochs_done
        and state.checkpoint == run.epoch_checkpoint(state.epochs_done).name
        and (not previous or previous.get("epochs_done") == state.epochs_done - 1)
    )
    if not agree:
        raise RunDirError(
            f"{run.state_json}: epochs_done {state.epochs_done} disagrees with the rest of the commit "
            f"(checkpoint {state.checkpoint}, {state.metrics_rows} metrics rows); the file was edited or "
            "damaged. Restore it, or start a new run."
        )


def _try(run: RunDir, spec: Spec, state: TrainState, steps_per_epoch: int) -> Resumed | str:
    """The commit `state` loaded, or what is wrong with it (one line)."""
    problem = _metrics_problem(run, state)
    if problem:
        return problem
    checkpoint = _checkpoint_file(run, state)
    try:
        model = load_model(checkpoint)
    except ModelFileError as exc:
        return str(exc)
    steps = int(model.optimizer.iterations.numpy()) if model.optimizer is not None else None
    expected = expected_iterations(spec, state, steps_per_epoch)
    if steps != expected:
        return (
            f"{checkpoint}: its optimizer has taken {steps} steps, but {state.epochs_done} epochs "
            f"make {expected} (a checkpoint of another epoch or run)"
        )
    if checkpoint != run.last_checkpoint:
        atomic_copy(checkpoint, run.last_checkpoint)  # repairs a damaged or replaced last.keras
    return Resumed(state, model)


def _metrics_problem(run: RunDir, state: TrainState) -> str | None:
    """What is wrong with metrics.csv's committed rows for `state`, or None."""
    if state.metrics_rows is None:  # an older state.json: at least count the rows
        if len(run.read_metrics()) < state.epochs_done:
            return f"{run.metrics_csv}: fewer than the {state.epochs_done} rows committed (missing or cut)"
        return None
    if state.metrics_rows == 0:  # nothing to lose; the header is rewritten at the next commit
        return None
    if run.metrics_sha256(state.metrics_rows) != state.metrics_sha256:
        return (
            f"{run.metrics_csv}: its first {state.metrics_rows} rows are not the ones committed "
            "(missing, cut or edited)"
        )
    return None


def _checkpoint_file(run: RunDir, state: TrainState) -> Path:
    path = run.checkpoints / state.checkpoint
    if state.metrics_rows is None and (not state.checkpoint or not path.exists()):
        return run.last_checkpoint  # as older versions resumed
    return path
