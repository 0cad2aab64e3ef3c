"""Output folders a user names: created where missing, refused in one line where they cannot
hold files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dnnlab.errors import RunDirError


def ensure_folder(path: Path, key: str = "--runs-dir", holds: str = "run directories") -> Path:
    """Create the folder runs (or the files named by `holds`) go in, and its parents; a path that
    cannot be one is a RunDirError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{key}: {path} is a file, expected a folder for {holds}") from None
    except OSError as exc:
        raise RunDirError(f"{key}: cannot create {path} ({exc.strerror})") from None
    try:  # a folder may exist and still refuse new entries (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".dnnlab-probe-", dir=path))
    except OSError as exc:
        raise RunDirError(f"{key}: cannot create {holds} in {path} ({exc.strerror})") from None
    return path


def check_output_folder(path: Path, key: str) -> None:
    """Refuse an output file's path before any work: its folder must exist and take new files
    (a probe file is created and removed), so /proc or a read-only mount fails in one line."""
    path = Path(path)
    folder = path.parent
    if path.exists() and not (path.is_file() or path.is_dir()):  # a device, pipe or socket
        raise RunDirError(
            f"{key} {path}: exists and is not a regular file (a device, pipe or socket); name a file"
        )
    if not folder.is_dir():
        raise RunDirError(f"{key} {path}: folder {folder} does not exist; create it or choose another path")
    refused = write_refused(folder)
    if refused:
        raise RunDirError(f"{key} {path}: cannot write in {folder} ({refused})")


def write_refused(folder: Path) -> str | None:
    """Why `folder` does not take a new file (a probe file is created and removed), or None."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".dnnlab-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(probe)
    return None
