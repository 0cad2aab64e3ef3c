"""The lock a live run or sweep holds: an exclusive flock on a file removed while held."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from dnnlab.errors import RunDirError, WriteError


def acquire_lock(lock_file: Path, busy: str) -> int:
    """An exclusive flock on `lock_file` (created if missing), held until `release_lock`; a
    RunDirError saying `busy` when another process holds it."""
    import fcntl

    while True:
        try:
            fd = os.open(lock_file, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunDirError(
                    f"{lock_file}: a symbolic link; dnnlab creates and removes this lock file, so it "
                    "must be a file. Remove the link."
                ) from None
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
                raise WriteError(
                    f"{lock_file}: cannot create the lock file ({exc.strerror}); dnnlab works on a run "
                    "in place, so its folder must be writable: copy the run to a writable folder",
                    exc.strerror,
                ) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunDirError(busy) from None
            raise
        # release_lock removes the file: a lock taken on a file already removed guards nothing
        if _same_file(fd, lock_file):
            return fd
        os.close(fd)


def release_lock(lock_file: Path, fd: int) -> None:
    """Remove `lock_file` while still holding it (so no two processes can hold the old file and a
    new one at once), then release it."""
    lock_file.unlink(missing_ok=True)
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
