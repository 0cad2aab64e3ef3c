"""Atomic writes: a file is replaced through a temporary name, fsync and rename, so a kill
at any instant leaves the old or the new version, never half a file.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from dnnlab.errors import WriteError


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reserve_temporary(target: Path, suffix: str) -> Path:
    """A new empty file beside `target` with an unpredictable name (mkstemp), readable by others."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide run files from other readers
    os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _replace_with(write: Any, target: Path, suffix: str = ".tmp") -> None:
    """Write a temporary file beside `target` with `write(path)`, fsync it, rename it into
    place and fsync the directory: readers see the old file or the new one, never half."""
    try:
        tmp = _reserve_temporary(target, suffix)
    except OSError as exc:
        raise WriteError.of(target, exc) from exc
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # frees the space a full disk had let it take
        if isinstance(exc, OSError):
            raise WriteError.of(target, exc) from exc
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    _replace_with(lambda tmp: tmp.write_bytes(data), Path(path))


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """The bytes of an .npz of `arrays` that depend on the arrays alone: np.savez stamps each
    member with the current time, so the same results would give different files."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.asarray(array, order="C"), allow_pickle=False
            )  # 0-d stays 0-d
            archive.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue()
            )
    return buffer.getvalue()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(payload: Any) -> str:
    """The text of every JSON file dnnlab writes."""
    return json.dumps(payload, indent=2) + "\n"


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json_text(payload))


def overwrite_in_place(path: Path, data: bytes) -> None:
    """The last resort on a full disk, where an atomic write's temporary file finds no space: one
    write() over the blocks `path` already holds, padded with spaces to its old length (JSON
    allows them) so that no instant shows a shorter text; a kill cannot split one system call.
    Refused (WriteError) when `data` would need a block the file does not have."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise WriteError.of(path, exc) from exc
    try:
        stat = os.fstat(fd)
        data = data.ljust(stat.st_size, b" ")
        if len(data) > stat.st_blocks * 512:
            raise WriteError.of(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except OSError as exc:
        raise WriteError.of(path, exc) from exc
    finally:
        os.close(fd)


def atomic_save_model(model: Any, path: Path) -> None:
    """`model.save` to a temporary `.keras` file beside `path`, then rename it into place."""
    _replace_with(model.save, Path(path), suffix=".tmp.keras")  # Keras wants the .keras suffix


def atomic_copy(source: Path, target: Path) -> None:
    """Replace `target` with a copy of `source`'s bytes: an independent file (not a hard link),
    so damage to one checkpoint never reaches another."""
    _replace_with(lambda tmp: shutil.copyfile(source, tmp), Path(target))


# The temporary names the helpers above create (mkstemp's 8 characters), and the hard links
# earlier versions made (`.NAME.<16 hex>.link`): a kill can leave them behind; resume removes them.
TEMPORARY_NAME = re.compile(r"^\..+\.([a-z0-9_]{8}\.tmp(\.keras)?|[0-9a-f]{16}\.link)$")


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete the files under `root` named like the helpers' temporary files (never following a
    symbolic link to a folder): what a killed process left, or the space a full disk needs back for
    the run's record. Only call it while holding the run's lock."""
    removed = []
    for folder, _, names in os.walk(root):
        for name in names:
            if TEMPORARY_NAME.match(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
