"""The trials' run directories inside a sweep directory, read back as untrusted input.

A trial's `run` (from sweep.json) names its folder; every path a sweep writes or removes is
checked to be that plain name inside the sweep directory, and not a symbolic link (training writes
and deletes files there, as in a run's checkpoints/, which `train --resume` refuses as a link).
Only what dnnlab created is removed: a trial folder holding run.json and no committed epoch (a
start cut short), or the hidden staging folder `.<run>.<12 hex>.starting` a killed start left
(see dnnlab.runs' STAGING_SUFFIX). Anything else in a trial's place is refused in one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError
from dnnlab.rundir.layout import RUN_JSON, STAGING_SUFFIX, STATE_JSON
from dnnlab.sweep.trials import TRIAL_NAME

LOCK = ".lock"


def trial_path(sweep_dir: Path, run: Any) -> Path:
    """`sweep_dir / run`, when `run` is a trial's folder name and that path is a folder inside
    the sweep directory or nothing yet; otherwise a one-line RunDirError."""
    sweep_dir = Path(sweep_dir)
    if not isinstance(run, str) or not TRIAL_NAME.fullmatch(run):
        raise RunDirError(
            f"{sweep_dir}: trial directory {run!r} is not a trial's folder name (its id, then what "
            "differs, e.g. 003-activation=elu); sweep.json was edited or damaged"
        )
    path = sweep_dir / run
    if path.is_symlink():
        raise RunDirError(
            f"{path}: a symbolic link (to {os.readlink(path)}); dnnlab writes and deletes files in a "
            "trial's directory, so it must be a folder inside the sweep directory. Replace the link "
            "with the trial's folder."
        )
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: not a folder; a trial's run directory goes there. Move it away.")
    if path.resolve().parent != sweep_dir.resolve():  # a plain name cannot leave; checked all the same
        raise RunDirError(f"{path}: lies outside the sweep directory {sweep_dir}")
    return path


def check_trial_dir(sweep_dir: Path, run: Any) -> Path:
    """`trial_path`, and a folder already there must be a run dnnlab made (it has run.json): a
    trial's folder only ever appears, by a rename, with its run.json in it."""
    path = trial_path(sweep_dir, run)
    if path.is_dir() and not (path / RUN_JSON).is_file():
        raise RunDirError(
            f"{path}: a folder without {RUN_JSON} in the place of a trial: not a run dnnlab started, "
            "so it is left alone. Move it out of the sweep directory, then resume."
        )
    return path


def check_lock_file(run_path: Path) -> None:
    """A trial's `.lock` is opened and created when it is resumed: it must not be a link."""
    if (run_path / LOCK).is_symlink():
        raise RunDirError(
            f"{run_path / LOCK}: a symbolic link; dnnlab creates and removes this lock file, so it "
            "must be a file inside the run. Remove the link."
        )


def remove_unstarted(run_path: Path) -> None:
    """Remove a trial folder whose start was cut short (run.json, no state.json: nothing was
    trained), so that the trial starts afresh; refuse anything else in its place."""
    if not run_path.exists() and not run_path.is_symlink():
        return
    path = check_trial_dir(run_path.parent, run_path.name)
    if (path / STATE_JSON).exists():
        raise RunDirError(
            f"{path / RUN_JSON}: cannot be read, but the trial has committed epochs ({STATE_JSON}); "
            "restore run.json, or move the trial's folder out of the sweep directory, then resume"
        )
    shutil.rmtree(path)


# The hidden folder dnnlab.runs stages a new run in: `.<run>.<12 hex>.starting`.
_STAGING = re.compile(rf"\.(.+)\.[0-9a-f]{{12}}{re.escape(STAGING_SUFFIX)}")


def remove_staging_leftovers(sweep_dir: Path, runs: Iterable[str]) -> list[Path]:
    """Remove the staging folders killed starts of the trials `runs` left in the sweep directory:
    a real folder of exactly such a name whose lock file is there and held by no process (a start
    in progress holds it). Returns what was removed."""
    runs = set(runs)
    removed = []
    for path in sorted(Path(sweep_dir).iterdir()):
        match = _STAGING.fullmatch(path.name)
        if match is None or match.group(1) not in runs or path.is_symlink() or not path.is_dir():
            continue
        if _unlocked(path / LOCK):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _unlocked(lock_file: Path) -> bool:
    """Whether `lock_file` is a plain file no process holds a lock on (never created here)."""
    import fcntl

    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False  # missing (a start between its mkdir and its lock), a link, unreadable
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: EWOULDBLOCK
    except OSError:
        return False
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)
