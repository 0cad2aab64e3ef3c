"""Keras's downloadable sets (mnist, fashion_mnist, cifar10, cifar100) read from Keras's own
cache format, so a file placed there by hand works offline. Keras itself is imported only to
download a set that is missing, and that fails fast with advice when there is no network."""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import socket
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab.data.user_files import read_npz
from dnnlab.errors import DataError

_GCS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
# name -> (host to reach, what to place where; `{dir}` is the Keras datasets cache directory)
_KERAS_SOURCES = {
    "mnist": ("storage.googleapis.com", f"place mnist.npz (from {_GCS}mnist.npz) in {{dir}}/"),
    "fashion_mnist": (
        "storage.googleapis.com",
        f"place {', '.join(_FASHION_FILES)} (from {_GCS}) in {{dir}}/fashion-mnist/",
    ),
    "cifar10": (
        "www.cs.toronto.edu",
        f"place cifar-10-python.tar.gz (from {_TORONTO}cifar-10-python.tar.gz) in {{dir}}/",
    ),
    "cifar100": (
        "www.cs.toronto.edu",
        f"place cifar-100-python.tar.gz (from {_TORONTO}cifar-100-python.tar.gz) in {{dir}}/",
    ),
}
# cifar name -> (folder inside the archive, Keras 3's extraction folder, test file, label key)
_CIFAR = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-py-target", "test_batch", b"labels"),
    "cifar100": ("cifar-100-python", "cifar-100-python-target", "test", b"fine_labels"),
}
_CIFAR_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def cache_dirs() -> list[Path]:
    """Where Keras keeps downloaded sets: $KERAS_HOME/datasets or ~/.keras/datasets, then the
    /tmp/.keras/datasets that Keras downloads into when that home is not writable."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    dirs = [Path(home) / "datasets"]
    if not os.access(home, os.W_OK):
        dirs.append(Path("/tmp/.keras/datasets"))
    return list(dict.fromkeys(dirs))


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from Keras's cache; downloaded through Keras only when
    missing, and a clear DataError when that fails (offline)."""
    for directory in cache_dirs():
        arrays = _read_keras_cache(name, directory)
        if arrays is not None:
            return arrays
    host, instruction = _KERAS_SOURCES[name]
    try:
        (x_train, y_train), (x_test, y_test) = _download_keras(name, host)
    except Exception as exc:  # noqa: BLE001 - any download failure is the same advice to the user
        cache = cache_dirs()[0]
        raise DataError(
            f"data.dataset: {name} is not in the Keras cache and cannot be downloaded (offline?); "
            f"{instruction.format(dir=cache)} ({type(exc).__name__}: {exc})"
        ) from None
    if x_train.ndim == 4 and x_train.shape[1] == 3:  # Keras set to channels_first
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return x_train, y_train, x_test, y_test


def _download_keras(name: str, host: str) -> Any:
    """keras.datasets.<name>.load_data(), failing in seconds rather than hanging offline."""
    if not any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")):
        socket.create_connection((host, 443), timeout=5).close()
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout clean for --json output
            return getattr(keras.datasets, name).load_data()
    finally:
        socket.setdefaulttimeout(previous)


# What a truncated, corrupted or tampered cache file raises while it is read.
_UNREADABLE = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    tarfile.TarError,
)


def _read_keras_cache(name: str, directory: Path) -> tuple[np.ndarray, ...] | None:
    """(x_train, y_train, x_test, y_test) from Keras's cache layout, or None when absent."""
    try:
        if name == "mnist":
            return _read_mnist(directory)
        if name == "fashion_mnist":
            return _read_fashion(directory / "fashion-mnist")
        return _read_cifar(name, directory)
    except _UNREADABLE as exc:
        raise DataError(
            f"data.dataset: the cached {name} files in {directory} cannot be read ({exc}); "
            "delete them to download again"
        ) from None


_SPLITS = ("x_train", "y_train", "x_test", "y_test")


def _read_mnist(directory: Path) -> tuple[np.ndarray, ...] | None:
    path = directory / "mnist.npz"
    if not path.is_file():
        return None
    found = read_npz(path, "data.dataset", _SPLITS)  # headers checked: the cache is a file like any
    return found["x_train"], found["y_train"], found["x_test"], found["y_test"]


def _read_fashion(directory: Path) -> tuple[np.ndarray, ...] | None:
    paths = [directory / f for f in _FASHION_FILES]
    if not all(p.is_file() for p in paths):
        return None
    y_train, y_test = _read_idx(paths[0], 8), _read_idx(paths[2], 8)
    x_train = _read_idx(paths[1], 16).reshape(len(y_train), 28, 28)
    x_test = _read_idx(paths[3], 16).reshape(len(y_test), 28, 28)
    return x_train, y_train, x_test, y_test


def _read_idx(path: Path, header_bytes: int) -> np.ndarray:
    """The uint8 payload of a gzipped IDX file (8 header bytes for labels, 16 for images)."""
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header_bytes)


def _read_cifar(name: str, directory: Path) -> tuple[np.ndarray, ...] | None:
    inner, extracted, test_file, label_key = _CIFAR[name]
    # Keras 3 extracts into <inner>-target/<inner>; Keras 2 extracted straight into the cache.
    folders = [directory / extracted / inner, directory / inner]
    folder = next((f for f in folders if (f / test_file).is_file()), None)
    if folder is None:
        archives = [directory / f"{extracted}_archive", directory / _CIFAR_ARCHIVES[name]]
        archive = next((a for a in archives if a.is_file()), None)
        if archive is None:
            return None
        with tarfile.open(archive) as tar:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(directory / extracted, **safe)
        folder = folders[0]
    train_files = [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"]
    train = [_cifar_batch(folder / f, label_key) for f in train_files]
    x_test, y_test = _cifar_batch(folder / test_file, label_key)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only, never arbitrary code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    x = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[label_key], dtype=np.uint8)
