"""XLA's compiled train steps kept on disk across runs, so a run that repeats an earlier one's
shapes loads its executables instead of compiling them again.

TensorFlow 2.21 persists the executables of `jit_compile=True` functions when `TF_XLA_FLAGS`
names a directory before TensorFlow starts (`--tf_xla_persistent_cache_directory`; checked on
CPU: one `.pb` file per compiled cluster, loaded by the next process). Its file names hold a
fingerprint of the function's signature and HLO and the device type, but not what else decides
the machine code, so dnnlab puts that in the prefix TensorFlow writes before them: the
TensorFlow version, the XLA flags of the environment and the CPU (an executable compiled for
another CPU may use instructions this one lacks). Entries of another prefix are never read.

TensorFlow stops the run with an error on an entry it cannot parse (a truncated write, a damaged
file), so every entry of the current prefix is checked before TensorFlow starts, by its protobuf
framing (cheap: the lengths of its three fields must fit the file), and a broken one is deleted:
TensorFlow then compiles and writes it again. This module imports nothing of TensorFlow, so
`dnnlab cache info|clear` starts fast.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

ENV = "DNNLAB_XLA_CACHE"  # a folder for the cache, or "off"
OFF = frozenset({"off", "0", "false", "no", ""})
PREFIX = "dnnlab-"  # every entry dnnlab's cache writes starts with it; `clear` removes only those
# TensorFlow's file name: PREFIX__SIGNATURE__CLUSTER__DEVICE.pb (device_executable_persistor.h).
ENTRY = re.compile(r"^(dnnlab-[0-9a-f]{16})__\d+__\d+__([A-Z0-9_]+)\.pb$")
# dnnlab's own marker of a train step it compiled under this key: PREFIX__STEP.compiled (empty).
MARKER = re.compile(r"^(dnnlab-[0-9a-f]{16})__([0-9a-f]{32})\.compiled$")
DEVICE_TYPES = "CPU,XLA_CPU"  # only the CPU case was checked
CACHE_FLAGS = ("--tf_xla_persistent_cache_",)


def directory() -> Path | None:
    """Where the cache lives: $DNNLAB_XLA_CACHE, else $XDG_CACHE_HOME/dnnlab/xla, else
    ~/.cache/dnnlab/xla; None when $DNNLAB_XLA_CACHE turns it off."""
    setting = os.environ.get(ENV)
    if setting is not None:
        return None if setting.strip().lower() in OFF else Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dnnlab" / "xla"


def _user_flags() -> str:
    flags = os.environ.get("TF_XLA_FLAGS", "").split()
    return " ".join(f for f in flags if not f.startswith(CACHE_FLAGS))


def _cpu() -> str:
    """The CPU model and its instruction-set flags (Linux), else what Python knows of it."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
    return "\n".join(wanted) or f"{platform.machine()} {platform.processor()}"


def prefix() -> str:
    """The key of every executable this process may load: `dnnlab-` and a hash of what decides
    the machine code besides the function itself."""
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    parts = [version, _user_flags(), os.environ.get("XLA_FLAGS", ""), _cpu()]
    return PREFIX + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


_active: Path | None = None  # the folder enable() pointed TensorFlow at in this process


# Set to "1" in processes that run beside others of the same shapes (a sweep's workers):
# TensorFlow writes an entry in place, not atomically, so a worker could read another's
# half-written entry and fail; such processes read the cache and never write it.
READ_ONLY = "DNNLAB_XLA_CACHE_READ_ONLY"


def enable() -> Path | None:
    """Point TensorFlow's persistent XLA cache at `directory()` and delete broken entries of this
    process's key. Call before TensorFlow is imported (it reads TF_XLA_FLAGS once); does nothing
    when the cache is off, when TF_XLA_FLAGS already names a cache directory, or when the folder
    cannot be created (the run then compiles as without a cache). Returns the folder in use."""
    folder = directory()
    if folder is None or "--tf_xla_persistent_cache_directory" in os.environ.get("TF_XLA_FLAGS", ""):
        return None
    read_only = os.environ.get(READ_ONLY) == "1"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = prefix()
        for path in folder.glob(f"{key}__*.pb") if not read_only else ():
            if not entry_is_sound(path, key):
                path.unlink(missing_ok=True)
    except OSError:
        return None
    flags = [
        f"--tf_xla_persistent_cache_directory={folder}",
        f"--tf_xla_persistent_cache_device_types={DEVICE_TYPES}",
        f"--tf_xla_persistent_cache_prefix={key}",
    ]
    if read_only:
        flags.append("--tf_xla_persistent_cache_read_only=true")
    os.environ["TF_XLA_FLAGS"] = " ".join([*os.environ.get("TF_XLA_FLAGS", "").split(), *flags])
    global _active
    _active = folder
    return folder


def _marker(step: str) -> Path | None:
    if _active is None:
        return None
    return _active / f"{prefix()}__{hashlib.sha256(step.encode()).hexdigest()[:32]}.compiled"


def compiled_before(step: str) -> bool:
    """Whether this process loads the executables of the train step described by `step` (any
    text that changes whenever its program does) from the cache: it was compiled under this
    key before (`remember_compiled`) and the cache is on here. A guess, used only to plan: if
    the entries are gone, TensorFlow compiles again."""
    marker = _marker(step)
    return marker is not None and marker.is_file() and any(_active.glob(f"{prefix()}__*.pb"))


def remember_compiled(step: str) -> None:
    """Note that the train step `step` was compiled and cached here (best effort)."""
    marker = _marker(step)
    if marker is not None and os.environ.get(READ_ONLY) != "1":  # a read-only process cached nothing
        try:
            marker.touch()
        except OSError:
            pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> dict[int, tuple[int, object]]:
    """Top-level protobuf fields of `data`: number -> (wire type, value or (start, length)).
    Raises ValueError on framing that does not fit, a repeated field or a group."""
    fields: dict[int, tuple[int, object]] = {}
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number in fields:
            raise ValueError("bad or repeated field")
        if wire == 0:
            value, at = _varint(data, at)
            fields[number] = (wire, value)
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("field runs past the end")
            fields[number] = (wire, (at, length))
            at += length
        else:
            raise ValueError("unexpected wire type")
    return fields


def entry_is_sound(path: Path, key: str) -> bool:
    """Whether `path` frames as TensorFlow's XlaSerializedCacheEntry {key, hlo_module,
    executable} with a key of this `key` and its device, and a non-empty executable. Reads the
    key's bytes and seeks past the rest, so checking is cheap; a bit flipped inside the HLO or
    the executable is not seen."""
    match = ENTRY.match(path.name)
    if not match or match.group(1) != key:
        return False
    try:
        with open(path, "rb") as handle:
            size, seen = os.fstat(handle.fileno()).st_size, []
            while handle.tell() < size:
                head = handle.read(20)  # a tag and a length: two varints of at most 10 bytes
                tag, at = _varint(head, 0)
                length, at = _varint(head, at)
                start = handle.tell() - len(head) + at
                number = tag >> 3
                if tag & 7 != 2 or number in seen or start + length > size:
                    return False
                seen.append(number)
                if number == 1:
                    handle.seek(start)
                    raw = handle.read(length)
                    fields = _fields(raw)
                    if _text(raw, fields, 4) != key or _text(raw, fields, 3) != match.group(2):
                        return False
                if number == 3 and length == 0:
                    return False
                handle.seek(start + length)
            return seen == [1, 2, 3]
    except (OSError, ValueError):
        return False


def _text(data: bytes, fields: dict, number: int) -> str | None:
    """The string field `number` of the message `data` parsed into `fields`."""
    found = fields.get(number)
    if found is None or found[0] != 2:
        return None
    start, length = found[1]
    return data[start : start + length].decode(errors="replace")


@dataclass(frozen=True)
class Summary:
    directory: Path | None
    key: str
    current: tuple[int, int]  # entries, bytes of this process's key
    other: tuple[int, int]  # entries, bytes of other keys (another TensorFlow, CPU or flags)


def summary() -> Summary:
    """What `dnnlab cache info` shows."""
    folder, key = directory(), prefix()
    current, other = [0, 0], [0, 0]
    for path in own_entries(folder):
        size = path.stat().st_size
        if MARKER.match(path.name):
            continue
        counts = current if path.name.startswith(f"{key}__") else other
        counts[0], counts[1] = counts[0] + 1, counts[1] + size
    return Summary(folder, key, tuple(current), tuple(other))


def own_entries(folder: Path | None) -> list[Path]:
    """The files dnnlab's cache wrote into `folder` (by their name), nothing else there."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if (ENTRY.match(p.name) or MARKER.match(p.name)) and p.is_file() and not p.is_symlink()
    )


def clear(stale_only: bool = False) -> tuple[int, int]:
    """Delete dnnlab's entries (files of other programs in the folder stay); with `stale_only`
    only those of other keys, which this TensorFlow, CPU and flags never load. (files, bytes)."""
    files = size = 0
    current = f"{prefix()}__"
    for path in own_entries(directory()):
        if stale_only and path.name.startswith(current):
            continue
        try:
            bytes_ = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        files, size = files + 1, size + bytes_
    return files, size
