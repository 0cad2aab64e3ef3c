"""`dnnlab train`: a new run or a resumed one, from setup through every epoch to the finish.

Why training is arranged this way (see docs/keras3.md):
- `fit(shuffle=True)` cannot replay its order after a restart, so the data order is a
  permutation drawn from (seed, epoch) inside a tf.data pipeline, read from an epoch variable.
- Dropout's seed state is not saved in a `.keras` file, so it is set from (seed, epoch) at the
  start of every epoch (callbacks.epoch_seeder); a resumed epoch draws the same masks.
- Keras callbacks reset their counters in `on_train_begin`; the stateful ones here follow
  callbacks.protocol.Resumable and keep their state in state.json.
- Schedules live in the optimizer (evaluated on its saved `iterations`), so the learning rate
  after a resume is the one the uninterrupted run would have used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from dnnlab import runtime, xla_cache
from dnnlab.console import stderr_console
from dnnlab.data import datasets
from dnnlab.data.checked_spec import CheckedSpec
from dnnlab.errors import RunDirError
from dnnlab.files.atomic import (
    atomic_copy,
    atomic_save_model,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temporaries,
)
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.layout import check_new_run
from dnnlab.rundir.records import BestRecord, RunRecord, TrainState, TransferState, now
from dnnlab.spec.loading import read_run_spec, spec_to_yaml
from dnnlab.spec.models import Spec
from dnnlab.training.faults import record_failure, sigterm_interrupts

runtime.quiet_tensorflow()
import keras  # noqa: E402

from dnnlab.model.build import load_model, summary_text  # noqa: E402
from dnnlab.training.callbacks.early_stopping import ResumableEarlyStopping  # noqa: E402
from dnnlab.training.divergence import divergence_message, divergence_record  # noqa: E402
from dnnlab.training.execution import Execution, without_xla  # noqa: E402
from dnnlab.training.greedy import initial_state, plan_record  # noqa: E402
from dnnlab.training.hparams import write_hparams, write_results  # noqa: E402
from dnnlab.training.pipeline import evaluation_batch_size, score  # noqa: E402
from dnnlab.training.session import Session, initial_loss  # noqa: E402
from dnnlab.training.setup import Prepared, new_record, prepare  # noqa: E402

log = logging.getLogger("dnnlab")


EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str
    epochs_done: int
    best: BestRecord  # epoch counts from 0, as in metrics.csv
    message: str | None = None  # for a diverged run: what happened and what to try
    test: dict[str, float] | None = None  # loss and metrics on the test split (completed runs)

    @property
    def exit_code(self) -> int:
        return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)


def start(
    checked: CheckedSpec,
    runs_dir: Path,
    name: str | None,
    command: list[str],
    progress: bool = True,
    run_path: Path | None = None,
    epochs: int | None = None,
) -> TrainResult:
    """Train a new run. Everything that can be wrong with the input is found before the run
    directory is created, so a bad input (or an interrupt until then) leaves nothing behind. The
    directory appears with run.json in it (status `starting`), so a kill at any later instant
    leaves a run that `--resume` continues. `epochs`: train only so many of the spec's
    `training.epochs` now (a search's first rung); the rest of the plan still counts them all."""
    spec = checked.spec
    with sigterm_interrupts():
        if run_path is None:  # before the data and the model: a bad name or folder costs nothing
            check_new_run(runs_dir, name, spec.name)
        if spec.training.mlflow is not None:  # an unusable store: one line before anything is written
            from dnnlab.training.mlflow_tracking import KEY, check_tracking_uri

            check_tracking_uri(spec.training.mlflow.tracking_uri, KEY)
        prepared = prepare(spec, checked.info.input_shape, state=None)
        if progress and prepared.plan_note:
            stderr_console().print(prepared.plan_note, markup=False, highlight=False)
        record = new_record(spec, command)
        if run_path is not None:
            run = RunDir.create_at(run_path, record, spec_to_yaml(spec))
        else:
            run = RunDir.create(runs_dir, name or spec.name, record, spec_to_yaml(spec))
        try:
            result = _train(run, spec, prepared, None, epochs or spec.training.epochs, progress)
        finally:
            run.unlock()
        if prepared.execution.jit_compile and prepared.step_key and result.epochs_done > 0:
            xla_cache.remember_compiled(prepared.step_key)  # the next such run plans no compile
        return result


def _set_up(run: RunDir, spec: Spec, prepared: Prepared, epochs: int) -> TrainState:
    """The files of a new run after its run.json; state.json, written last, commits the setup
    and the status becomes `running`. Without state.json, `--resume` does all this again."""
    if not run.config.exists():  # written in the staging folder by RunDir.create
        atomic_write_text(run.config, spec_to_yaml(spec))
    atomic_write_json(run.preprocessing, prepared.dataset.preprocessing())
    atomic_write_text(run.summary_txt, summary_text(prepared.model))
    initial = run.epoch_checkpoint(0)
    atomic_save_model(prepared.model, initial)  # the last good checkpoint, even if epoch 1 diverges
    atomic_copy(initial, run.last_checkpoint)
    metrics_sha256 = run.write_metrics([])
    write_hparams(run.tensorboard, yaml.safe_load(spec_to_yaml(spec)), run.path.name)
    transfer = spec.model.transfer
    state = TrainState(
        epochs_done=0,
        checkpoint=initial.name,
        execution=prepared.execution.to_dict(),
        best=BestRecord.none_yet(spec.training.monitor),
        transfer=(
            TransferState(prepared.reused, transfer.freeze_epochs == 0, prepared.transfer_source)
            if transfer
            else None
        ),
        metrics_rows=0,
        metrics_sha256=metrics_sha256,
        pretrain=initial_state(run) if spec.training.pretrain else None,
    )
    # The loss at initialization, for the collapse rule of every session of the run (measured
    # before the commit, so a run whose setup is committed always has it).
    loss = initial_loss(prepared.model, spec, prepared.dataset)
    extra = {**run.read_record().extra, "initial_loss": loss}
    if spec.training.pretrain:  # the phases, beside the status (their rows: pretrain.csv)
        extra["pretrain"] = plan_record(spec, prepared.dataset)
    run.update_record(extra=extra)
    run.write_state(state)
    if prepared.transfer_source is not None:  # where the reused layers came from, beside the status
        extra = {
            **run.read_record().extra,
            "transfer": {**prepared.transfer_source, "layers": prepared.reused},
        }
        run.update_record(status="running", epochs_planned=epochs, extra=extra)
    else:
        run.update_record(status="running", epochs_planned=epochs)
    return state


def resume(run_path: Path, epochs: int | None, command: list[str], progress: bool = True) -> TrainResult:
    """Continue a run from its last committed epoch, exactly as if it had not stopped."""
    with sigterm_interrupts():
        run = RunDir.open(run_path)
        run.check_own_folders()
        record = run.read_record()
        if not run.state_json.is_file() and not run.config.is_file():
            raise RunDirError(
                f"{run.path}: stopped while starting, before its config.yaml was written; nothing was "
                "trained. Start the run again with `dnnlab train SPEC`"
            )
        spec, config_hash = read_run_spec(run.config)
        if config_hash != record.config_hash:
            raise RunDirError(
                f"{run.config}: edited since the run started (hash differs); a resumed run must "
                "train the spec it started with. Start a new run with the edited spec instead."
            )
        if not run.state_json.is_file():  # stopped during its setup: nothing trained, set it up again
            return _start_again(run, spec, epochs or spec.training.epochs, progress)
        return _continue(run, record, spec, epochs, command, progress)


def _start_again(run: RunDir, spec: Spec, epochs: int, progress: bool) -> TrainResult:
    """Set up a run stopped before its setup was committed from its config.yaml, then train it."""
    run.lock()
    try:
        remove_stale_temporaries(run.path)
        prepared = prepare(spec, datasets.describe(spec.data).input_shape, state=None)
        return _train(run, spec, prepared, None, epochs, progress)
    finally:
        run.unlock()


def _continue(
    run: RunDir, record: RunRecord, spec: Spec, epochs: int | None, command: list[str], progress: bool
) -> TrainResult:
    """Train a set-up run from its last committed epoch (or only finish it, see below)."""
    state = run.read_state(spec.training.monitor)
    if record.status == "completed" and epochs is None:
        raise RunDirError(
            f"{run.path}: completed after {state.epochs_done} epochs; pass --epochs N to train it further"
        )
    planned = epochs or record.epochs_planned or spec.training.epochs
    if epochs and epochs > spec.training.epochs and spec.training.schedule.type == "one_cycle":
        log.warning(
            "training.schedule: one_cycle keeps the cycle of %d epochs it was compiled with; "
            "epochs past it run at final_lr",
            spec.training.epochs,
        )
    # Every epoch committed (or early stopping had stopped) but the finalisation (model.keras, the
    # status) cut by a kill or an interrupt: a fit of no epochs runs the end of training again,
    # where early stopping restores its best weights.
    stopped = ResumableEarlyStopping.has_stopped(state.callbacks)
    finishing = record.status != "completed" and (state.epochs_done >= planned or stopped)
    if finishing:
        planned = state.epochs_done
    elif planned <= state.epochs_done:
        raise RunDirError(
            f"{run.path}: {state.epochs_done} epochs already done; pass --epochs N with N > "
            f"{state.epochs_done} to train further"
        )
    run.lock()  # a killed process leaves status 'running'; the lock refuses a live one
    try:
        remove_stale_temporaries(run.path)  # a killed process's; none is being written under the lock
        prepared = prepare(spec, None, state, run)
        run.update_record(status="running", finished=None, epochs_planned=planned, command=command)
        return _train(run, spec, prepared, prepared.state, planned, progress)
    finally:
        run.unlock()


def _train(
    run: RunDir, spec: Spec, prepared: Prepared, state: TrainState | None, epochs: int, progress: bool = True
) -> TrainResult:
    """Set up a new run (no `state`), fit and finish it, all under one protection: an interrupt at
    any point records `interrupted`, a failure (a full disk too) `failed`."""
    session = None
    try:
        if state is None:
            state = _set_up(run, spec, prepared, epochs)
        session = Session(run, spec, prepared.dataset, state, progress)
        status = session.fit(prepared.model, epochs)
        test = _finish(run, spec, prepared, state, status)
        extra = {k: v for k, v in run.read_record().extra.items() if k != "divergence"}
        if session.divergence is not None:
            extra["divergence"] = divergence_record(spec, session.divergence)
        record = run.update_record(status=status, finished=now(), test=test, extra=extra)
    except KeyboardInterrupt:
        status = "interrupted"
        record = run.update_record(status=status, finished=now())
        if state is not None:  # TensorBoard's best so far, as at the end of every process's share
            write_results(run.tensorboard, state.best, None, state.epochs_done)
    except BaseException as exc:
        failure = record_failure(run, exc)
        if session is not None and session.live is not None:
            session.live.finish("failed")
        if failure is exc:
            raise
        raise failure from exc
    if session is not None and session.live is not None:
        session.live.finish(status)
    message = divergence_message(spec, session.divergence) if session and session.divergence else None
    best = record.best or BestRecord.none_yet(spec.training.monitor)
    return TrainResult(run.path, status, record.epochs_done, best, message, record.test)


def _finish(run: RunDir, spec: Spec, prepared: Prepared, state: TrainState, status: str) -> dict | None:
    """model.keras, the test scores and TensorBoard's results; returns the test scores."""
    if status in ("completed", "diverged"):
        final = prepared.model if status == "completed" else load_model(run.last_checkpoint)
        atomic_save_model(final, run.model_file)
    test = (
        _test_scores(prepared.model, prepared.execution, spec, prepared.dataset)
        if status == "completed"
        else None
    )
    write_results(run.tensorboard, state.best, test, state.epochs_done)
    return test


def _test_scores(
    model: keras.Model, execution: Execution, spec: Spec, dataset: datasets.Dataset
) -> dict[str, float] | None:
    """The kept model scored on the test split. `model` holds the weights just written to
    model.keras, so it is scored in memory, reusing the evaluation graph traced for validation,
    rather than loaded again; without XLA, as `dnnlab evaluate` scores model.keras, so that both
    give the same numbers."""
    if dataset.x_test is None or len(dataset.x_test) == 0:
        return None
    with without_xla(model, execution, spec.training.batch_size, len(dataset.x_train)):
        return score(model, dataset.x_test, dataset.y_test, evaluation_batch_size(spec))
