"""Process-wide TensorFlow settings: quiet start-up, seeds, determinism."""

from __future__ import annotations

import contextlib
import os
import sys


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


def quiet_tensorflow() -> None:
    """Import TensorFlow and probe its devices without its start-up chatter on stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
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
