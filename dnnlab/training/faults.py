"""How a run meets faults: signals become an orderly interrupt, a refused write one line.

A SIGTERM (a scheduler, `kill`, a sweep's driver) is turned into the KeyboardInterrupt that Ctrl-C
raises, so both take the same path: the run is recorded `interrupted` and the process exits 130.
`train` installs this before its heavy imports, so a signal at any instant takes that path. A run
whose write failed (full disk, read-only file system, no permission) is recorded `failed` after
removing the temporary files a full disk needs back, and the user gets one line saying so. No
TensorFlow here: the CLI imports this module before anything else of the command.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from dnnlab.errors import DnnlabError, WriteError
from dnnlab.files.atomic import remove_stale_temporaries
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.records import now


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does; the previous handler comes back
    afterwards. Outside the main thread (where Python cannot set handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def record_failure(run: RunDir, error: BaseException) -> BaseException:
    """Mark the run `failed` (after freeing what a failed write left) and return what to raise:
    for a refused write, one WriteError line that also says whether the status could be recorded
    and how to continue; for anything else (a bug), `error` itself."""
    remove_stale_temporaries(run.path)
    resume = f"dnnlab train --resume {run.path}"
    try:
        try:
            run.update_record(status="failed", finished=now())
        except WriteError:  # no space even for run.json's temporary file: over its own blocks
            run.update_record_in_place(status="failed", finished=now())
        recorded = f"run marked failed; continue it with `{resume}`"
    except (OSError, DnnlabError) as again:
        reason = again.strerror if isinstance(again, OSError) else getattr(again, "reason", str(again))
        recorded = f"could not mark the run failed either ({reason}); `{resume}` continues it"
    if isinstance(error, OSError):  # a write outside dnnlab.files.atomic's helpers (TensorBoard, Keras)
        error = WriteError.of(error.filename or run.path, error)
    if isinstance(error, WriteError):
        return WriteError(f"{error}; {recorded} once the disk can be written", error.reason)
    return error
