"""`dnnlab diagnose SPEC`: the spec's network measured at initialization and after some steps.

The numbers per Dense layer, on one fixed probe batch of the training split: the kernel's
gradient norm, its weight norm, the update-to-weight ratio; the mean and standard deviation of the
activation that follows the layer, the fraction of saturated values and of dead units.
"""

from __future__ import annotations

from pathlib import Path

from dnnlab import runtime
from dnnlab.data.checked_spec import check_spec
from dnnlab.errors import DnnlabError

runtime.quiet_tensorflow()
import tensorflow as tf  # noqa: E402

from dnnlab.diagnostics.verdicts import Diagnosis, all_verdicts  # noqa: E402
from dnnlab.model.probe import Prober, probe_batch  # noqa: E402
from dnnlab.rundir.layers_csv import Measurement  # noqa: E402


def diagnose_spec(target: Path, overrides: list[str] | None = None, steps: int = 0) -> Diagnosis:
    """Measure a spec's model at initialization (and after `steps` training steps), writing
    nothing. A run directory is `verdicts.diagnose_run`'s, which needs no TensorFlow."""
    target = Path(target)
    if not target.exists():
        raise DnnlabError(f"{target}: no such spec file or run directory")
    checked = check_spec(target, overrides)
    spec = checked.spec
    from dnnlab.training import pipeline, setup

    prepared = setup.prepare(spec, checked.info.input_shape, state=None)
    dataset, model = prepared.dataset, prepared.model
    size = spec.training.diagnostics.probe_size if spec.training.diagnostics else 256
    x, y = probe_batch(dataset.x_train, dataset.y_train, size, spec.seed)
    prober = Prober(model, spec.training.loss, x, y)
    rows, _ = prober.measure()
    measurements = [Measurement(0, 0, rows)]
    if steps:
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        data = pipeline.make_train_dataset(
            dataset.x_train, dataset.y_train, spec.training.batch_size, spec.seed, epoch
        )
        model.fit(data.repeat().take(steps), epochs=1, verbose=0, shuffle=False)
        rows, _ = prober.measure()
        done = int(model.optimizer.iterations.numpy())
        measurements.append(Measurement(done // setup.steps_per_epoch(spec, dataset), done, rows))
    found = all_verdicts(measurements, spec, epoch_steps=setup.steps_per_epoch(spec, dataset))
    return Diagnosis(spec.name, "spec", measurements, found, checked.warnings)
