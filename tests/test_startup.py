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
