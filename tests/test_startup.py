"""What a command imports before it does its work: start-up is part of the product's speed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dnnlab import runtime


def run_fresh(script: str) -> str:
    """Run `script` in a new interpreter (imports are process-wide) and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_tensorflow_starts_without_the_integrations_dnnlab_does_not_use():
    """jax, pandas, matplotlib, scikit-learn and SciPy cost a third of `import tensorflow`; they
    stay unimported, Keras still trains, and each imports normally afterwards."""
    out = run_fresh(
        """
        import sys
        from dnnlab import runtime
        runtime.quiet_tensorflow()
        import keras, numpy as np
        skipped = sorted(runtime.OPTIONAL_FOR_TENSORFLOW & set(sys.modules))
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
        import matplotlib, sklearn  # installed with dnnlab: nothing is left refusing them
        print(skipped, sorted(runtime.OPTIONAL_FOR_TENSORFLOW & set(sys.modules)) != [])
        """
    )
    assert out == "[] True"


def test_a_skipped_import_fails_only_inside_the_block():
    name = "dnnlab_no_such_module_imported_yet"
    with runtime.optional_imports_skipped(frozenset({name})):
        with pytest.raises(ModuleNotFoundError, match="skipped"):
            __import__(name)
    with pytest.raises(ModuleNotFoundError, match="No module named"):
        __import__(name)


EXIT_SCRIPT = """
import atexit, sys, threading, types
sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))  # as after a training command
from dnnlab import runtime
atexit.register(lambda: print("atexit ran"))
if {busy}:
    threading.Thread(target=lambda: __import__("time").sleep(0.5)).start()
print("the run directory", end="")  # still buffered when the process ends
runtime.exit_without_teardown(3)
print(" and then the normal exit")
sys.exit(4)
"""


@pytest.mark.parametrize("busy", [False, True])
def test_exit_without_teardown_keeps_the_status_the_output_and_atexit(busy):
    """A process that imported TensorFlow ends at once with its status, its buffered output and
    its atexit handlers; while another thread works it exits the normal way instead."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT.format(busy=busy)], capture_output=True, text=True, timeout=60
    )
    if busy:
        expected = (4, "the run directory and then the normal exit\natexit ran\n")
    else:
        expected = (3, "the run directoryatexit ran\n")
    assert (done.returncode, done.stdout) == expected
