"""Reading the .npz and .csv files a user points dnnlab at, as untrusted input.

A data path may name anything: a FIFO or /dev/zero (reading blocks or never ends), a file far
too large for memory, an .npz whose array header claims 10^13 rows, or a secret such as
/etc/shadow. So a data file must be a regular file under a size cap, every .npy header inside
an .npz is checked against its member's size and dtype before any array is read (never
allow_pickle), values must be finite, and errors name the file, the line or row and the column
number and what was expected, never the file's contents. See docs/architecture.md, "Data files".
"""

from __future__ import annotations

import contextlib
import csv
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab.errors import DataError
from dnnlab.files.bounded import Refused, check_regular

MiB = 1 << 20
# A CSV is parsed into Python lists (tens of bytes per cell) before it becomes an array, so its
# cap is far below what an .npz, read straight into arrays, may hold.
MAX_CSV_BYTES = 256 * MiB
MAX_NPZ_BYTES = 8 * 1024 * MiB  # the arrays' data, uncompressed
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_CHUNK_ROWS = 4096


def regular_file(path: str | Path, key: str, limit: int) -> Path:
    """`path` when it is a regular file of at most `limit` bytes, else a one-line DataError.

    A FIFO, a device or a directory is refused before it is opened, so nothing blocks."""
    path = Path(path)
    advice = "; save large data as .npz" if limit == MAX_CSV_BYTES else ""
    with refusals_as_data_errors(path, key, limit, "this kind of file", advice):
        check_regular(path, limit)
    return path


@contextlib.contextmanager
def refusals_as_data_errors(path: Path, key: str, limit: int, what: str, advice: str = "") -> Iterator[None]:
    """A missing file, one that is not a regular file, or one over `limit` bytes (what the
    bounded readers refuse) as one DataError line naming `key`; `what` and `advice` word the cap."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{key}: {path}: no such file") from None
    except Refused as refused:
        if refused.size is None:
            raise DataError(f"{key}: {path}: {refused}; expected a file") from None
        raise DataError(
            f"{key}: {path} has {refused.size:,} bytes, more than the {limit:,} allowed for {what}{advice}"
        ) from None


# --- npz -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayHeader:
    """One .npy member of an .npz as its header describes it (checked against its size)."""

    shape: tuple[int, ...]
    dtype: np.dtype


def npz_headers(path: str | Path, key: str) -> dict[str, ArrayHeader]:
    """Array name -> header of every .npy member, read from the headers only.

    Each array must hold numbers (no object, string or structured dtype) and its header's shape
    times item size must equal the bytes its member holds, so a header claiming more rows than
    the file has is refused before anything is allocated."""
    path = regular_file(path, key, MAX_NPZ_BYTES)
    headers: dict[str, ArrayHeader] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".npy"):
                    continue
                name = member.filename[: -len(".npy")]
                header, data_bytes = _member_header(archive, member, path, key)
                _check_array(name, header, data_bytes, path, key)
                total += data_bytes
                headers[name] = header
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError, NotImplementedError):
        raise DataError(f"{key}: {path} is not a readable .npz file (a zip of .npy arrays)") from None
    if total > MAX_NPZ_BYTES:
        raise DataError(
            f"{key}: {path} holds {total:,} bytes of arrays, more than the {MAX_NPZ_BYTES:,} allowed"
        )
    return headers


def _member_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path, key: str):
    """The member's header and the number of bytes that follow it."""
    with archive.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        except (ValueError, TypeError, SyntaxError):  # numpy's messages quote the header: not shown
            raise DataError(f"{key}: {path}: {member.filename} is not a valid .npy array") from None
        return ArrayHeader(tuple(shape), dtype), member.file_size - stream.tell()


def _check_array(name: str, header: ArrayHeader, data_bytes: int, path: Path, key: str) -> None:
    dtype = header.dtype
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise DataError(
            f"{key}: {path}: array {name} has dtype {dtype.str}; expected numbers (bool, int, uint or float)"
        )
    claimed = math.prod(header.shape) * dtype.itemsize  # Python ints: no overflow
    if claimed != data_bytes:
        raise DataError(
            f"{key}: {path}: array {name}'s header claims shape {header.shape} ({claimed:,} bytes), "
            f"but the file holds {data_bytes:,} bytes for it; the file is damaged"
        )


def read_npz(path: str | Path, key: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays among `names` (default: all) that the file has, once `npz_headers` accepted
    every header."""
    path = Path(path)
    headers = npz_headers(path, key)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in (names or headers) if name in headers}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise DataError(f"{key}: {path} is not a readable .npz file (a zip of .npy arrays)") from None


# --- csv -----------------------------------------------------------------------------------


def csv_rows(path: str | Path, key: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty row, header included, of a capped regular file."""
    path = regular_file(path, key, MAX_CSV_BYTES)
    number = 0
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if row and any(cell.strip() for cell in row):
                    yield number, [cell.strip() for cell in row]
    except UnicodeDecodeError:
        raise DataError(f"{key}: {path} is not UTF-8 text; expected a CSV file") from None
    except csv.Error:  # e.g. a NUL byte or a field over csv's size limit
        raise DataError(f"{key}: {path} line {number + 1} is not valid CSV") from None
    except OSError as exc:
        raise DataError(f"{key}: {path}: cannot read it ({exc.strerror})") from None


# --- values --------------------------------------------------------------------------------


def first_non_finite(values: np.ndarray) -> tuple[int, int | None] | None:
    """(row, flat column or None for 1-D) of the first NaN or infinity, or None; integers and
    bools are finite by construction, and floats are scanned a block of rows at a time."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or not len(values):
        return None
    for start in range(0, len(values), _CHUNK_ROWS):
        block = values[start : start + _CHUNK_ROWS]
        bad = ~np.isfinite(block.reshape(len(block), -1))
        if bad.any():
            row, column = np.argwhere(bad)[0]
            return start + int(row), None if values.ndim == 1 else int(column)
    return None


def require_finite(values: np.ndarray, key: str, where: Any) -> None:
    """A DataError naming the row (and column) of the first NaN or infinity in `values`.

    `where(row, column)` says where that is in the user's file: `x_train row 5` of an .npz or
    `line 7, column 2` of a CSV."""
    found = first_non_finite(values)
    if found is not None:
        raise DataError(f"{key}: {where(*found)} is NaN or infinite; expected finite numbers")
