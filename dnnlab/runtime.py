"""Process-wide TensorFlow settings: quiet start-up, seeds, determinism."""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import os
import sys
import threading

from dnnlab import xla_cache

# Packages that TensorFlow and Keras import at start-up only because they are installed, for
# integrations dnnlab never uses: jax (TFLite's JAX converter, Keras's Orbax callback), pandas
# (DataFrames as Keras inputs), matplotlib (Keras's image galleries), scikit-learn and SciPy
# (Keras's scikit-learn wrappers, tf.compat.v1's Keras). Every such import is guarded by
# `except ImportError`, so skipping them changes nothing dnnlab calls, and they cost about a
# third of `import tensorflow` (docs/keras3.md). dnnlab imports them itself where it needs them.
OPTIONAL_FOR_TENSORFLOW = frozenset({"jax", "pandas", "matplotlib", "sklearn", "scipy"})
# scikit-learn imports pandas only to accept DataFrames; dnnlab passes it arrays.
OPTIONAL_FOR_SKLEARN = frozenset({"pandas"})


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines (CUDA probing,
    oneDNN notes) ignore TF_CPP_MIN_LOG_LEVEL in recent releases. Python exceptions still
    surface, because they are printed after the descriptor is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


stderr_silenced = _stderr_silenced  # for other C++ chatter (the TFLite interpreter's start)


class _SkipOptional(importlib.abc.MetaPathFinder):
    """Refuse the optional packages not imported yet, as if they were not installed."""

    def __init__(self, names: frozenset[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name}: skipped (optional here)", name=name)
        return None


@contextlib.contextmanager
def optional_imports_skipped(names: frozenset[str]):
    """Inside the block, importing one of the packages `names` (but for those imported already
    and the Keras backend in use) fails as if it were not installed; afterwards they import
    normally. For the optional imports of a heavy library that dnnlab does not use."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    finder = _SkipOptional(frozenset(n for n in names if n not in sys.modules and n != backend))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def default_log_level() -> str:
    """TensorFlow's C++ log level unless the user sets TF_CPP_MIN_LOG_LEVEL: errors and above
    ("2"), or fatal only ("3") with the persistent XLA cache on, because loading a cached CPU
    executable logs two spurious error lines (a "target machine feature +prefer-no-scatter is not
    supported" mismatch of tuning pseudo-features) per executable. TensorFlow's errors still
    reach the user as Python exceptions."""
    return "2" if xla_cache.directory() is None else "3"


def quiet_tensorflow() -> None:
    """Import TensorFlow and probe its devices without its start-up chatter on stderr, with the
    persistent XLA cache (dnnlab.xla_cache) on unless it is turned off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", default_log_level())
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    xla_cache.enable()
    with _stderr_silenced(), optional_imports_skipped(OPTIONAL_FOR_TENSORFLOW):
        import tensorflow as tf

        tf.config.list_physical_devices()
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    # Its Python logger warns about retracing when one process trains several models (a sweep's
    # worker, a test session): expected there, and noise on a user's stderr.
    tf.get_logger().setLevel("ERROR")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, enable op determinism."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def exit_without_teardown(code: object) -> None:
    """End a process that imported TensorFlow now, with exit status `code`, skipping the
    interpreter's teardown: TensorFlow's runtime and thousands of modules took 2-7 s to finalize
    after `dnnlab train` on a loaded 2-core machine, and nothing depends on it, since every file
    dnnlab writes is complete (fsynced and closed) before. The atexit handlers still run and
    the streams are flushed. Returns, for a normal exit, when TensorFlow was not imported, when
    `code` is not an exit status, or while another non-daemon thread runs."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "tensorflow" not in sys.modules or others or not (code is None or isinstance(code, int)):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code or 0)
