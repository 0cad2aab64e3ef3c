"""The run directory's records and rules: run.json / state.json round trips, is_better, the lock."""

from __future__ import annotations

import json

import pytest

from dnnlab.errors import RunDirError
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.rundir.better import is_better
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import RECORD_VERSION, BestRecord, RunRecord, TrainState, TransferState

# run.json and state.json as dnnlab wrote them before records had a `version`
OLD_RUN_JSON = {
    "name": "tiny",
    "status": "completed",
    "started": "2026-11-27T10:00:00.000+00:00",
    "finished": "2026-11-27T10:01:00.000+00:00",
    "epochs_done": 4,
    "epochs_planned": 4,
    "best": {"metric": "val_loss", "mode": "min", "value": 0.25, "epoch": 2},
    "seed": 7,
    "config_hash": "abc123",
    "versions": {"dnnlab": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1", "python": "3.11.9"},
    "host": "box",
    "command": ["dnnlab", "train", "spec.yaml"],
    "wall_seconds": 12.5,
}
OLD_STATE_JSON = {
    "epochs_done": 4,
    "checkpoint": "epoch-00004.keras",
    "execution": {
        "steps_per_execution": 32,
        "jit_compile": True,
        "intra_op_threads": 1,
        "inter_op_threads": 1,
    },
    "best": {"metric": "val_loss", "mode": "min", "value": 0.25, "epoch": 2},
    "callbacks": {
        "ResumableEarlyStopping": {"wait": 1, "best": 0.25, "best_epoch": 2, "stopped_epoch": 0},
        "PlateauScheduler": {"wait": 0, "best": 0.25, "cooldown_counter": 0},
    },
    "wall_seconds": 12.5,
    "transfer": {"layers": ["dense"], "unfrozen": True},
}


def test_run_record_reads_an_old_file_and_writes_the_same_fields():
    record = RunRecord.from_dict(OLD_RUN_JSON)
    assert record.best == BestRecord("val_loss", "min", 0.25, 2)
    assert record.version == RECORD_VERSION
    assert record.to_dict() == {**OLD_RUN_JSON, "version": RECORD_VERSION}
    assert RunRecord.from_dict(record.to_dict()) == record


def test_train_state_reads_old_callback_keys_and_round_trips():
    state = TrainState.from_dict(OLD_STATE_JSON)
    assert set(state.callbacks) == {"early_stopping", "plateau"}
    assert state.transfer == TransferState(["dense"], True)
    again = TrainState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert again.to_dict()["version"] == RECORD_VERSION


def test_unknown_fields_survive_a_rewrite():
    record = RunRecord.from_dict({**OLD_RUN_JSON, "test": {"loss": 0.3}})
    assert record.to_dict()["test"] == {"loss": 0.3}


def test_damaged_run_json_reads_as_far_as_it_goes():
    record = RunRecord.from_dict(
        {"status": 3, "epochs_done": "x", "best": {"value": 1.0}, "wall_seconds": "nan"}
    )
    assert (record.status, record.epochs_done, record.best, record.wall_seconds) == ("unknown", 0, None, None)
    assert RunRecord.from_dict(None).status == "unknown"


def test_best_record_fills_a_missing_mode_from_the_metric():
    assert BestRecord.from_dict({"metric": "val_accuracy", "value": 0.9}).mode == "max"
    assert BestRecord.none_yet("val_loss") == BestRecord("val_loss", "min", None, None)


def test_run_dir_round_trips_records(tmp_path):
    run = RunDir(tmp_path)
    run.write_record(RunRecord.from_dict(OLD_RUN_JSON))
    changed = run.update_record(status="running", finished=None)
    assert run.read_record() == changed and changed.status == "running"
    run.write_state(TrainState.from_dict(OLD_STATE_JSON))
    assert run.read_state() == TrainState.from_dict(OLD_STATE_JSON)


def test_a_record_from_a_newer_dnnlab_is_refused(tmp_path):
    run = RunDir(tmp_path)
    run.state_json.write_text(json.dumps({**OLD_STATE_JSON, "version": RECORD_VERSION + 1}))
    with pytest.raises(RunDirError, match="newer dnnlab"):
        run.read_state()


@pytest.mark.parametrize(
    ("value", "best", "mode", "min_delta", "expected"),
    [
        (0.5, None, "min", 0.0, True),
        (0.4, 0.5, "min", 0.0, True),
        (0.5, 0.5, "min", 0.0, False),  # a tie keeps the earlier epoch
        (0.6, 0.5, "min", 0.0, False),
        (0.45, 0.5, "min", 0.1, False),  # better, but not by more than min_delta
        (0.35, 0.5, "min", 0.1, True),
        (0.9, 0.8, "max", 0.0, True),
        (0.8, 0.8, "max", 0.0, False),
        (0.85, 0.8, "max", 0.1, False),
        (0.95, 0.8, "max", 0.1, True),
        (0.95, 0.8, "max", -0.1, True),  # Keras takes min_delta's absolute value
        (float("nan"), 0.5, "min", 0.0, False),
    ],
)
def test_is_better(value, best, mode, min_delta, expected):
    assert is_better(value, best, mode, min_delta) is expected


def test_is_better_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="'min' or 'max'"):
        is_better(1.0, 0.5, "auto")


def test_lock_is_exclusive_and_its_file_goes_with_it(tmp_path):
    first, second = RunDir(tmp_path), RunDir(tmp_path)
    first.lock()
    with pytest.raises(RunDirError, match="another dnnlab process"):
        second.lock()
    first.unlock()
    assert not first.lock_file.exists()
    second.lock()  # a new lock file, free again
    assert second.lock_file.exists()
    second.unlock()


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "run.json"
    atomic_write_bytes(target, b"{}")
    atomic_write_bytes(target, b"[]")
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert target.read_bytes() == b"[]" and oct(target.stat().st_mode & 0o777) == "0o644"
