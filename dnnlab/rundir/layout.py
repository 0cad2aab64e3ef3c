"""The run directory's layout: its file names, statuses, names, and how a new one is
named and recognised (see docs/run-directory.md).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

from dnnlab.errors import RunDirError
from dnnlab.files.folders import ensure_folder
from dnnlab.spec.base import NAME_PATTERN

# `starting`: the directory exists and its setup (config, checkpoint, state.json) is being written.
STATUSES = ("starting", "running", "completed", "failed", "diverged", "interrupted")


# The files of a run directory, named once (RunDir's properties and the readers use these).
RUN_JSON, STATE_JSON, CONFIG_YAML, METRICS_CSV = "run.json", "state.json", "config.yaml", "metrics.csv"


RUN_FILES = (RUN_JSON, CONFIG_YAML, METRICS_CSV)  # any one of them makes a folder a run directory


RUN_FILES_TEXT = f"{RUN_JSON}, {CONFIG_YAML} or {METRICS_CSV}"  # for messages


# A new run is assembled in a hidden folder `.<name>.<random>.starting` beside its final name and
# renamed into place once run.json is in it; readers never take such a folder for a run.
STAGING_SUFFIX = ".starting"


def check_name(name: str, key: str = "--name") -> str:
    """`name` when it can name a folder inside the runs folder, else a one-line RunDirError."""
    if not re.fullmatch(NAME_PATTERN, name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise RunDirError(
            f"{key}: {shown!r} cannot name a run; expected 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_new_run(runs_dir: Path, name: str | None, spec_name: str) -> None:
    """What a new run needs from its arguments (a usable name, a folder it can be created in),
    checked before the data is loaded, so a bad argument costs nothing and leaves nothing."""
    check_name(name or spec_name, "--name" if name else "name")
    ensure_folder(runs_dir)


def new_stamped_dir(parent: Path, name: str) -> Path:
    """A new folder `parent/<name>-<YYYYMMDD-HHMMSS>[-N]`. mkdir is atomic, so two commands
    started in the same second get different folders."""
    parent = ensure_folder(parent)
    check_name(name)
    for path in stamped_names(parent, name):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"{parent}: cannot create {path.name} ({exc.strerror})") from None
        return path
    raise RunDirError(f"{parent}: could not create a directory for {name!r}")


def is_run_dir(path: Path) -> bool:
    """A folder with any of RUN_FILES in it (a damaged run still counts); not a run being staged."""
    if is_staging(path):
        return False
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def is_staging(path: Path) -> bool:
    """The hidden folder a new run is assembled in before it is renamed into place."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(STAGING_SUFFIX)


def stamped_names(parent: Path, name: str) -> Iterator[Path]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        yield parent / f"{name}-{stamp}{f'-{attempt}' if attempt else ''}"
