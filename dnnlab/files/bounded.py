"""Reading a path anyone may have named (a spec, a data file, a file of a copied run directory):
only a regular file, opened without blocking and never read past a cap, so a FIFO, a device or a
huge file costs nothing. Callers turn a `Refused` into their own one-line error."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class Refused(Exception):
    """Why `path` is not read, without the path: `reason` reads after it ("is a directory", "not a
    regular file"), `detail` says more ("a FIFO"); `size` is set when the file is over the cap."""

    def __init__(self, reason: str, detail: str | None = None, size: int | None = None):
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason, self.detail, self.size = reason, detail, size


def check_regular(path: Path, limit: int) -> os.stat_result:
    """The stat of `path` when it is a regular file of at most `limit` bytes. FileNotFoundError
    when it is missing; Refused otherwise."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Refused("cannot be read", exc.strerror) from None
    if stat.S_ISDIR(info.st_mode):
        raise Refused("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise Refused("not a regular file", _kind(info.st_mode))
    if info.st_size > limit:
        raise Refused(f"{info.st_size:,} bytes", size=info.st_size)
    return info


def read_capped(path: Path, limit: int) -> bytes:
    """The bytes of `path` after check_regular; opened with O_NONBLOCK, should it become a FIFO
    between the check and the open, and Refused when it grew past `limit` since."""
    check_regular(path, limit)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise Refused("not a regular file", _kind(mode))
            content = handle.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Refused("cannot be read", exc.strerror) from None
    if len(content) > limit:  # grew since the check
        raise Refused(f"more than {limit:,} bytes")
    return content


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"
