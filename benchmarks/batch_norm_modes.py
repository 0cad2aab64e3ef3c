"""Is a batch-norm stack held back by the gap between training and inference? Trains a spec epoch by
epoch as `dnnlab train` does (same data, model, optimizer, batch order) and prints, after each
epoch, the accuracy on the training rows three ways: in training mode (batch norm on the
statistics of each batch of `batch_size` rows, what the optimizer sees), in inference mode (its
moving statistics, what `evaluate` and val_accuracy use), and in inference mode with the moving
statistics replaced by the training rows' own (layer by layer): if inference lags training mode
and the replacement closes the gap, the moving statistics are what limits it. Also val accuracy in
inference mode and the kernels' update ratio over the epoch (first, middle, last Dense layer).

    python benchmarks/batch_norm_modes.py configs/science/deep_batch_norm_exploding.yaml 20 [-o KEY=VALUE ...]

Prints one JSON line per epoch; writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dnnlab.data.checked_spec import check_spec
from dnnlab.training import pipeline, setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("epochs", type=int)
    parser.add_argument("-o", "--override", action="append", default=[])
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    checked = check_spec(args.spec, args.override)
    spec = checked.spec
    prepared = setup.prepare(spec, checked.info.input_shape, state=None)
    data, model = prepared.dataset, prepared.model
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    x, y = data.x_train.astype("float32"), data.y_train
    batch = spec.training.batch_size

    def forward(rows, training):
        """The logits, and each batch-norm layer's input, batch norm in `training` mode."""
        h, inputs = tf.constant(rows), []
        for layer in model.layers:
            is_norm = isinstance(layer, keras.layers.BatchNormalization)
            if is_norm:
                inputs.append(h)
            h = layer(h, training=training and is_norm)
        return h.numpy(), inputs

    def accuracy(rows, labels, training=False):
        """Training mode: in batches of `batch_size` rows, as the optimizer sees them; inference
        mode: all rows at once (the moving statistics do not depend on the batch)."""
        saved = [[v.numpy() for v in n.non_trainable_variables] for n in norms]
        step = batch if training else len(rows)
        right = sum(
            int(np.sum(np.argmax(forward(rows[i : i + step], training)[0], 1) == labels[i : i + step]))
            for i in range(0, len(rows), step)
        )
        for norm, values in zip(norms, saved):  # training mode updates the moving statistics
            for variable, value in zip(norm.non_trainable_variables, values):
                variable.assign(value)
        return right / len(rows)

    def recalibrated():
        saved = [[v.numpy() for v in n.non_trainable_variables] for n in norms]
        for k, norm in enumerate(norms):
            values = forward(x, False)[1][k].numpy()
            norm.moving_mean.assign(values.mean(0))
            norm.moving_variance.assign(values.var(0))
        result = accuracy(x, y)
        for norm, values in zip(norms, saved):
            for variable, value in zip(norm.non_trainable_variables, values):
                variable.assign(value)
        return result

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    train = pipeline.make_train_dataset(x, y, batch, spec.seed, epoch)
    for done in range(1, args.epochs + 1):
        before = [k.numpy() for k in kernels]
        epoch.assign(done - 1)
        model.fit(train, epochs=1, verbose=0, shuffle=False)
        moved = [float(np.linalg.norm(k.numpy() - b) / np.linalg.norm(b)) for k, b in zip(kernels, before)]
        line = {
            "epoch": done,
            "train_rows_training_mode": round(accuracy(x, y, training=True), 3),
            "train_rows_inference_mode": round(accuracy(x, y), 3),
            "train_rows_recalibrated": round(recalibrated(), 3) if norms else None,
            "val_inference_mode": round(accuracy(data.x_val.astype("float32"), data.y_val), 3),
            "update_ratio_first_middle_last": [float(f"{moved[i]:.2g}") for i in (0, len(moved) // 2, -1)],
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
