"""Single-instance and 1,000-instance latency of Géron's batch-norm model, as Keras runs it and
as `dnnlab export` writes it.

    .venv/bin/python benchmarks/latency.py            # updates benchmarks/RESULTS.md
    .venv/bin/python benchmarks/latency.py --quick    # fewer repetitions, prints only

The model is Géron's (Flatten 28x28, BN, Dense 300 elu, BN, Dense 100 elu, BN, Dense 10
softmax: batch norm after the activation), trained for 2 epochs by dnnlab on 5,000 synthetic
rows so that its batch-norm statistics are not the identity. Every path runs in this one
process on the same raw rows, after warm-up calls; the cases alternate round by round so that
they meet the same load. Keras paths get the scaled rows, exported paths the raw ones (their
scaling is built in). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import GERON_BN_MODEL, machine, median_seconds, write_section  # noqa: E402

SECTION = "## latency"
SPEC = {
    "name": "geron-bn",
    "seed": 42,
    "data": {
        "dataset": {"type": "synthetic", "shape": [28, 28], "classes": 10, "train": 5000, "test": 1000},
        "validation": 0.1,
        "scaling": "unit",
    },
    "model": GERON_BN_MODEL,
    "training": {"epochs": 2, "batch_size": 32, "optimizer": "nadam"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; do not write RESULTS.md")
    args = parser.parse_args()
    load = machine()

    import numpy as np
    import yaml

    from dnnlab import runtime

    runtime.quiet_tensorflow()
    import tensorflow as tf

    from dnnlab.data.checked_spec import check_spec
    from dnnlab.data.datasets import Scaling
    from dnnlab.inference import export as exporting
    from dnnlab.model.build import load_model
    from dnnlab.training import lifecycle

    scratch = Path(tempfile.mkdtemp(prefix="dnnlab-latency-"))
    spec_path = scratch / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    result = lifecycle.start(check_spec(spec_path), scratch / "runs", None, ["benchmark"], progress=False)
    run = result.run_dir
    outputs = {
        "folded SavedModel": (scratch / "folded", "savedmodel", ["--fold-batch-norm"]),
        "TFLite float32 (folded)": (scratch / "f32.tflite", "tflite", ["--fold-batch-norm"]),
        "TFLite float16 (folded)": (scratch / "f16.tflite", "tflite", ["--fold-batch-norm", "float16"]),
        "TFLite int8 weights (folded)": (scratch / "i8.tflite", "tflite", ["--fold-batch-norm", "int8"]),
        "ONNX Runtime (folded)": (scratch / "m.onnx", "onnx", ["--fold-batch-norm"]),
    }
    exports = {}
    for name, (path, fmt, options) in outputs.items():
        quantize = next((o for o in options if o in ("float16", "int8")), None)
        exports[name] = exporting.export(run, fmt, path, fold_batch_norm=True, quantize=quantize)

    preprocessing = yaml.safe_load((run / "preprocessing.json").read_text())
    scaling = Scaling.from_dict(preprocessing["scaling"])
    raw = np.random.default_rng(0).uniform(0, 1, size=(1000, 28, 28)).astype("float32")
    raw = raw * scaling.scale + scaling.offset
    scaled = scaling.apply(raw)
    model = load_model(run / "model.keras", compile=False)

    runners = {
        "Keras `model.predict`": lambda x: model.predict(x, verbose=0),
        "Keras model called directly": lambda x: model(x, training=False),
    }
    signature = tf.saved_model.load(str(outputs["folded SavedModel"][0])).signatures["serving_default"]
    runners["folded SavedModel"] = lambda x: signature(x=tf.constant(x))
    for name in ("TFLite float32 (folded)", "TFLite float16 (folded)", "TFLite int8 weights (folded)"):
        content = outputs[name][0].read_bytes()
        runners[name] = exporting.tflite_runner(content, tf)
    runners["ONNX Runtime (folded)"] = exporting.onnx_runner(outputs["ONNX Runtime (folded)"][0].read_bytes())
    keras_paths = {"Keras `model.predict`", "Keras model called directly"}

    rounds = 3 if args.quick else 7
    single: dict[str, list[float]] = {name: [] for name in runners}
    batch: dict[str, list[float]] = {name: [] for name in runners}
    for name, run_it in runners.items():  # warm-up: tracing, allocation, resizing
        x = scaled if name in keras_paths else raw
        run_it(x[:1])
        run_it(x)
    for _ in range(rounds):
        for name, run_it in runners.items():
            x = scaled if name in keras_paths else raw
            repeats = 10 if "predict" in name else 50
            single[name].append(median_seconds(lambda f=run_it, x=x: f(x[:1]), repeats))
            batch[name].append(median_seconds(lambda f=run_it, x=x: f(x), 3))
            run_it(x[:1])

    reference = np.asarray(model(scaled, training=False))
    folded = signature(x=tf.constant(raw))["probabilities"].numpy()
    fold_diff = float(np.max(np.abs(folded - reference)))
    base = statistics.median(single["Keras `model.predict`"])
    rows = []
    for name in runners:
        one, thousand = statistics.median(single[name]), statistics.median(batch[name])
        exported = exports.get(name)
        size = (
            f"{exported.export_bytes / 1024:,.0f}"
            if exported
            else f"{(run / 'model.keras').stat().st_size / 1024:,.0f}"
        )
        diff = f"{exported.max_abs_diff:.2g}" if exported else "-"
        agree = f"{exported.agreement:.1%}" if exported and exported.agreement is not None else "-"
        cells = [name, f"{one * 1e3:.3f}", f"{base / one:,.0f}x", f"{thousand * 1e3:.2f}", size, diff, agree]
        rows.append("| " + " | ".join(cells) + " |")
    exported = [n for n in runners if n not in keras_paths]
    fastest = max(exported, key=lambda n: base / statistics.median(single[n]))
    speedup = base / statistics.median(single[fastest])
    header = ["path", "1 instance ms", "speedup vs predict", "1,000 instances ms", "size KiB"]
    header += ["max abs diff", "same class"]
    text = "\n".join(
        [
            SECTION,
            "",
            "`python benchmarks/latency.py`: Géron's batch-norm model (Flatten 28x28, BN, Dense 300 "
            "elu, BN, Dense 100 elu, BN, Dense 10 softmax), trained 2 epochs by dnnlab on 5,000 "
            "synthetic rows; every export made by `dnnlab.inference.export.export` with `--fold-batch-norm` "
            "(each verified against the run's model on its 1,000 test rows: max abs diff and same "
            f"class below). {rounds} rounds alternating the paths in one process, median per round "
            "of 10 (`model.predict`) or 50 single-instance calls and of 3 calls on 1,000 rows, then "
            "the median over rounds. Target: the fastest exported single-instance path at least 20x "
            "faster than `model.predict`; the folded model within 1e-4 of the unfolded one.",
            "",
            f"Machine: {load}, TensorFlow {tf.__version__}; the machine is shared, so absolute "
            "figures drift.",
            "",
            "| " + " | ".join(header) + " |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"Fastest exported single-instance path: {fastest}, {speedup:,.0f}x faster than "
            "`model.predict`. Folded SavedModel against the unfolded Keras model on 1,000 raw rows: "
            f"max abs difference {fold_diff:.2g} (target 1e-4).",
            "",
        ]
    )
    print(text)
    if not args.quick:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
