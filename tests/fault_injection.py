"""Faults at chosen instants, for tests/test_faults_lifecycle.py (test code, not dnnlab's).

`faulty_writer(action, name, nth)`, put in place of `dnnlab.files.atomic._replace_with` (which every
run file goes through), acts at the `nth` atomic write of the file `name`: `kill` (SIGKILL: no
handler runs), `term` (SIGTERM), `enospc` (the disk fills while that file is written; its
temporary file is removed, which frees the space again) or `erofs` (the file system turns
read-only: that write and every later one fails; with `read_only_in_place` in place of
`dnnlab.files.atomic.overwrite_in_place`, the last-resort rewrite of run.json too).
`at_import(action, module)` acts when `module` starts to be imported.

Run as a script, it runs the dnnlab command line with one fault in place:
    python fault_injection.py ACTION WHERE N DNNLAB-ARGS...
where WHERE is a file name or `import:MODULE`. It imports no TensorFlow itself.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

from dnnlab.files import atomic


def act(action: str) -> None:
    os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM}[action])


def _failing(write, code: int):
    def failed(tmp: Path) -> None:
        write(tmp)  # part of the file reaches the disk, as with a real full disk
        raise OSError(code, os.strerror(code))

    return failed


def faulty_writer(action: str, name: str, nth: int = 1):
    original = atomic._replace_with
    writes = 0

    def faulty(write, target, suffix=".tmp"):
        nonlocal writes
        if Path(target).name == name:
            writes += 1
            if writes == nth and action in ("kill", "term"):
                act(action)
            if writes == nth and action == "enospc":
                write = _failing(write, errno.ENOSPC)
        if action == "erofs" and writes >= nth:
            write = _failing(write, errno.EROFS)
        return original(write, target, suffix)

    return faulty


def read_only_in_place(path, data) -> None:
    """In place of dnnlab.files.atomic.overwrite_in_place on a read-only file system."""
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))


class _ImportTrap:
    """A meta path finder that acts when `module` is first looked for."""

    def __init__(self, action: str, module: str):
        self.action, self.module = action, module

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.module:
            sys.meta_path.remove(self)
            act(self.action)
        return None


def at_import(action: str, module: str) -> None:
    sys.meta_path.insert(0, _ImportTrap(action, module))


if __name__ == "__main__":
    action, where, nth, *args = sys.argv[1:]
    if where.startswith("import:"):
        at_import(action, where.removeprefix("import:"))
    else:
        atomic._replace_with = faulty_writer(action, where, int(nth))
    from dnnlab.cli.main import app

    app(args, prog_name="dnnlab")
