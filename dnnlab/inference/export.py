"""`dnnlab export`: a run's model as a SavedModel, a TFLite flat buffer or an ONNX graph that takes
raw inputs (the run's scaling is the graph's first step) and returns what `dnnlab predict`
returns: `predicted` and `probabilities` for classification (with `predicted_index` where the
run has class labels), `values` for regression.

Every export is verified before it is written: the exported model, loaded by its own runtime
(TensorFlow, the TFLite interpreter, onnxruntime), runs on the test split (a seeded sample of
the training split when there is none) in raw form and is compared with the run's model on the
same rows scaled as in training. A float32 export that differs by more than 1e-5 (1e-4 with
folded batch norm; relative to outputs larger than 1) is a bug and is not written. The result
gives the maximum absolute difference, the accuracy (or RMSE) of both, the file sizes and the
single-instance latency of both.

A run on a table: the SavedModel takes the raw rows, one text input per feature column (the
table's encoding is in the graph, see table_graph); TFLite's built-in ops and ONNX have no
conversion of text to numbers, so those take the encoded vector (preprocessing.json's
`table.features`, in that order, unscaled). The report's `inputs` says which. Verification of a
table adds to the test rows a copy of the first row with each column missing in turn and one
with each categorical column's value unseen, so that the graph's fills are checked too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dnnlab.errors import DataError, DnnlabError, WriteError
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.files.folders import check_output_folder
from dnnlab.inference.options import EXPORT_FORMATS, QUANTIZATIONS
from dnnlab.inference.run_inputs import (
    PredictionSet,
    find_run,
    model_file,
    refuse_autoencoder,
    split_set,
    table_encoding,
)
from dnnlab.rundir.directory import RunDir

if TYPE_CHECKING:
    from dnnlab.data.tables import TablePreprocessing
SUFFIXES = {"savedmodel": "", "tflite": ".tflite", "onnx": ".onnx"}
TOLERANCE, FOLDED_TOLERANCE = 1e-5, 1e-4
FLOAT32_MAX = float(np.finfo(np.float32).max)
VERIFY_ROWS = 2000  # enough rows for an accuracy, few enough to verify in a second
SAMPLE_SEED = 0  # the training rows verified on when there is no test split: the same every time
ONNX_OPSET = 17
ONNX_INSTALL = "pip install 'dnnlab[onnx]' (tf2onnx and onnxruntime)"


class ExportError(DnnlabError):
    """An export option, format or output path that cannot be used."""


class VerificationError(DnnlabError):
    """The exported model does not compute what the run's model computes: nothing is written."""

    exit_code = 1


@dataclass(frozen=True)
class ExportResult:
    run: Path
    path: Path
    format: str
    quantize: str | None
    folded: list[str]  # batch-norm layers folded into Dense layers
    sparsity: float | None  # fraction of Dense kernel weights that are zero, with --prune-below
    int8_layers: list[str] | None  # --quantize int8: the Dense layers whose weights are int8
    source: str  # the rows verified on
    instances: int
    max_abs_diff: float  # of the probabilities (classification) or values (regression)
    metric: str  # accuracy or rmse
    run_score: float | None  # None without labels
    export_score: float | None
    agreement: float | None  # classification: share of rows with the same predicted class
    run_bytes: int  # model.keras
    export_bytes: int
    run_latency_ms: float  # one instance: the Keras model called directly
    export_latency_ms: float  # one instance in the exported model's runtime
    inputs: str = "x: raw rows (unscaled)"  # what the exported model takes

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def export(
    run_dir: Path,
    fmt: str,
    out: Path | None = None,
    fold_batch_norm: bool = False,
    quantize: str | None = None,
    prune_below: float | None = None,
    force: bool = False,
) -> ExportResult:
    """Export the run's final model in `fmt`, verify it, then write it atomically to `out`
    (default: RUN_DIR/export/...). An existing `out` is replaced only when it is an export of
    this format and `force` is given; the default path's export is dnnlab's own and replaced."""
    check_options(fmt, quantize, prune_below)
    run = find_run(run_dir)
    refuse_autoencoder(run, "export")
    source_model = model_file(run)
    target = Path(out) if out is not None else default_path(run, fmt, fold_batch_norm, quantize, prune_below)
    replace = force or out is None
    check_target(target, fmt)
    check_existing(target, fmt, replace)
    if out is not None:
        check_output_folder(target, "--out")
    verify, source = _verification_set(run)

    from dnnlab import runtime

    runtime.quiet_tensorflow()
    import tensorflow as tf

    from dnnlab.inference.folding import inference_copy, prune
    from dnnlab.model.build import load_model

    model = load_model(source_model, compile=False)
    exported_model, folded = inference_copy(model, fold_batch_norm)
    sparsity = None
    if prune_below is not None:
        zeros, total = prune(exported_model, prune_below)
        sparsity = zeros / total if total else 0.0
    if fmt == "savedmodel" and verify.table is not None:
        serve = table_serving_function(exported_model, verify.preprocessing, verify.table, tf)
        raw, inputs = verify.cells, _columns_description(verify.table)
    else:
        serve = serving_function(
            exported_model, verify.preprocessing, tf, keep_scaling_apart=quantize == "int8"
        )
        raw, inputs = verify.raw, _vector_description(verify)
    reference = _run_outputs(model, verify)

    int8_layers = None
    with tempfile.TemporaryDirectory(prefix="dnnlab-export-") as scratch:
        saved = Path(scratch) / "savedmodel"
        _save(exported_model, serve, saved)
        if fmt == "savedmodel":
            runner = savedmodel_runner(saved, tf)
            payload: bytes | Path = saved
        elif fmt == "tflite":
            payload = _tflite_bytes(saved, quantize, tf)
            runner = tflite_runner(payload, tf)
            if quantize == "int8":
                int8_layers = int8_dense_layers(payload, exported_model, tf)
        else:
            payload = _onnx_bytes(serve)
            runner = onnx_runner(payload)
        outputs = runner(raw)
        figures = _compare(verify, reference, outputs)
        # relative to outputs larger than 1 (regression values): float32 spacing grows with them
        tolerance = (FOLDED_TOLERANCE if folded else TOLERANCE) * max(1.0, figures.pop("magnitude"))
        if not figures["max_abs_diff"] <= tolerance and (quantize is None and prune_below is None):
            raise VerificationError(
                f"export verification failed: the {fmt} model differs from the run's model by "
                f"{figures['max_abs_diff']:.3g} (more than {tolerance:g}) on {source}; nothing written"
            )
        export_latency = single_latency(lambda: runner(_first(raw)))
        run_latency = single_latency(lambda: model(verify.x[:1], training=False))
        check_existing(target, fmt, replace)  # again: the verification took seconds
        written_bytes = _write(payload, target)
    return ExportResult(
        run=run.path,
        path=target,
        format=fmt,
        quantize=quantize,
        folded=folded,
        sparsity=sparsity,
        int8_layers=int8_layers,
        source=source,
        instances=len(verify.x),
        run_bytes=source_model.stat().st_size,
        export_bytes=written_bytes,
        run_latency_ms=run_latency * 1e3,
        export_latency_ms=export_latency * 1e3,
        inputs=inputs,
        **figures,
    )


def _first(raw: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    """The first row: of a matrix, or of every column of a table's cells."""
    return {k: v[:1] for k, v in raw.items()} if isinstance(raw, dict) else raw[:1]


def _columns_description(table: TablePreprocessing) -> str:
    from dnnlab.inference.table_graph import input_names

    names = [
        name if name == column else f"{name} ({column!r})" for column, name in input_names(table).items()
    ]
    return f"raw rows: one text input per column ({len(names)}): {', '.join(names)}"


def _vector_description(rows: _Rows) -> str:
    if rows.table is None:
        return "x: raw rows (unscaled)"
    return (
        f"x: the table's encoded vector of {rows.table.width} features (unscaled), in preprocessing.json's "
        "table.features order; the SavedModel export takes the raw columns"
    )


# --- options and paths ----------------------------------------------------------------------


def check_options(fmt: str, quantize: str | None, prune_below: float | None) -> None:
    """Refuse what cannot be exported before anything is loaded."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"--format: expected one of {', '.join(EXPORT_FORMATS)}; received {fmt!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"--quantize: expected one of {', '.join(QUANTIZATIONS)}; received {quantize!r}")
    if quantize is not None and fmt != "tflite":
        raise ExportError(f"--quantize uses TFLite's converter; use it with --format tflite, not {fmt}")
    if prune_below is not None and not prune_below > 0:
        raise ExportError(f"--prune-below: expected a positive threshold; received {prune_below}")
    if fmt == "onnx":
        missing = [name for name in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
        if missing:
            raise ExportError(f"--format onnx needs {' and '.join(missing)}: {ONNX_INSTALL}")


def default_path(run: RunDir, fmt: str, fold: bool, quantize: str | None, prune_below: float | None) -> Path:
    """RUN_DIR/export/model[-folded][-float16|-int8][-pruned].tflite|.onnx, or savedmodel[...]/."""
    tags = (
        ("-folded" if fold else "")
        + (f"-{quantize}" if quantize else "")
        + ("-pruned" if prune_below else "")
    )
    stem = "savedmodel" if fmt == "savedmodel" else "model"
    return run.path / "export" / f"{stem}{tags}{SUFFIXES[fmt]}"


def check_target(target: Path, fmt: str) -> None:
    suffix = SUFFIXES[fmt]
    if suffix and target.suffix.lower() != suffix:
        raise ExportError(f"--out {target}: a {fmt} export is a file ending in {suffix}")
    if fmt == "savedmodel" and target.is_file():
        raise ExportError(f"--out {target}: a SavedModel is a directory; that path is a file")
    if not suffix and target.suffix.lower() in (".tflite", ".onnx", ".keras"):
        raise ExportError(f"--out {target}: a SavedModel is a directory; give a path without {target.suffix}")


def export_kind(path: Path, fmt: str) -> str | None:
    """None when `path` is an export of `fmt` (a SavedModel: a folder with saved_model.pb; a
    TFLite flat buffer: a file with "TFL3" at byte 4; ONNX: a .onnx file whose first byte is the
    tag of ModelProto's ir_version, which every ONNX writer puts first), else what it is."""
    if fmt == "savedmodel":
        if not path.is_dir():
            return "not a folder"
        return None if (path / "saved_model.pb").is_file() else "a folder without saved_model.pb"
    if not path.is_file():
        return "not a file"
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if fmt == "tflite":
        return None if head[4:8] == b"TFL3" else "not a TFLite flat buffer"
    return None if head[:1] == b"\x08" else "not an ONNX model"


def check_existing(target: Path, fmt: str, replace: bool) -> None:
    """Refuse an existing `target` that is not a `fmt` export (dnnlab never removes a user's
    folder or file), and one that is unless `replace`. A symbolic link is judged by what it
    points to; replacing it replaces the link, never what it points to."""
    if not target.exists() and not target.is_symlink():
        return
    what = export_kind(target, fmt) if target.exists() else "a dangling symbolic link"
    link = " (a symbolic link)" if target.is_symlink() else ""
    if what is not None:
        raise ExportError(
            f"--out {target}: exists and is {what}{link}, not a {fmt} export; dnnlab replaces only "
            "its own exports: choose another path or move it away"
        )
    if not replace:
        raise ExportError(
            f"--out {target}: a {fmt} export exists there{link}; pass --force to replace it, or "
            "choose another path"
        )


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    x: np.ndarray  # scaled, for the run's model
    raw: np.ndarray  # as a user would feed the exported model (a table's: the encoded vector)
    y: np.ndarray | None  # the labels of the first len(y) rows (a table's probe rows have none)
    task: str
    preprocessing: dict[str, Any]
    table: TablePreprocessing | None = None
    cells: dict[str, np.ndarray] | None = None  # a table's rows as text, per feature column


def _verification_set(run: RunDir) -> tuple[_Rows, str]:
    """The test split's first VERIFY_ROWS rows; without a test split, VERIFY_ROWS training rows
    drawn with a fixed seed (the validation split is often small or absent, and the training
    split is what the model fits: a wrong export shows there just as well)."""
    table = table_encoding(run)
    if table is not None:
        return _table_rows(run, table)
    try:
        rows = split_set(run, "test")
    except DataError:
        rows = split_set(run, "train")
        if len(rows.x) <= VERIFY_ROWS:
            return _rows(run, rows, np.arange(len(rows.x))), "the training split (no test split)"
        picked = np.random.default_rng(SAMPLE_SEED).choice(len(rows.x), VERIFY_ROWS, replace=False)
        source = f"a sample of the training split ({VERIFY_ROWS:,} of {len(rows.x):,} rows; no test split)"
        return _rows(run, rows, np.sort(picked)), source
    limit = min(len(rows.x), VERIFY_ROWS)
    first = f" (first {VERIFY_ROWS:,} rows)" if len(rows.x) > VERIFY_ROWS else ""
    return _rows(run, rows, np.arange(limit)), f"the test split{first}"


def _rows(run: RunDir, rows: PredictionSet, picked: np.ndarray) -> _Rows:
    """The `picked` rows, scaled and raw. Splits come scaled; the raw rows are recovered with
    the inverse transform, and the scaled rows recomputed from them, so both models see the
    same inputs."""
    from dnnlab.data.datasets import Scaling

    preprocessing = run.read_json(run.preprocessing)
    scaling = Scaling.from_dict(preprocessing["scaling"])
    raw = np.asarray(rows.x[picked], dtype=np.float32) * scaling.scale + scaling.offset
    raw = raw.astype(np.float32)
    y = rows.y[picked] if rows.y is not None else None
    return _Rows(scaling.apply(raw), raw, y, rows.task or "classification", preprocessing)


def _table_rows(run: RunDir, table: TablePreprocessing) -> tuple[_Rows, str]:
    """A table's test rows (the first VERIFY_ROWS) as its file has them, and the probe rows
    (table_source.probe_rows), encoded by the run's recorded encoding and scaling."""
    from dnnlab.data import datasets, table_source
    from dnnlab.spec.loading import read_run_spec

    preprocessing = run.read_json(run.preprocessing)
    spec, _ = read_run_spec(run.config)
    source, rows = datasets.table_rows(spec.data)
    test = source.rows(rows["test"][:VERIFY_ROWS])
    y = table.encode_target(test)
    frame = table_source.with_probe_rows(test, table)
    raw = table.transform(frame)
    scaling = datasets.Scaling.from_dict(preprocessing["scaling"])
    from dnnlab.inference.table_graph import input_names

    cells = {name: table_source.cells_as_text(frame[column]) for column, name in input_names(table).items()}
    first = f" (first {VERIFY_ROWS:,} rows)" if len(rows["test"]) > VERIFY_ROWS else ""
    where = (
        f"the test split{first} and {len(frame) - len(test)} probe rows (missing cells, unseen categories)"
    )
    task = table.target.task if table.target is not None else preprocessing.get("task", "classification")
    return _Rows(scaling.apply(raw), raw, y, task, preprocessing, table, cells), where


# --- the exported graph ----------------------------------------------------------------------


def table_serving_function(
    model: Any, preprocessing: dict[str, Any], table: TablePreprocessing, tf: Any
) -> Callable:
    """raw table cells, one text input per feature column -> the table's encoding (table_graph)
    -> the scaling -> model -> predict's outputs."""
    from dnnlab.inference import table_graph

    outputs = _outputs(model, preprocessing, tf)

    @tf.function(input_signature=[table_graph.input_signature(table, tf)])
    def serve(cells):
        return outputs(table_graph.encode(cells, table, tf))

    return serve


def serving_function(
    model: Any, preprocessing: dict[str, Any], tf: Any, keep_scaling_apart: bool = False
) -> Callable:
    """raw x -> (x - offset) / scale -> model -> predict's outputs, as one tf.function. The
    statistics are numpy arrays, so they become constants of the graph (captured tensors would
    become inputs of the ONNX graph).

    `keep_scaling_apart` (int8): a clip to the float32 range, which changes no finite input, stands
    between the scaling and the model, so TFLite's converter cannot fold 1 / scale into the first
    Dense layer's weights. Folded, a near-constant feature's tiny standard deviation makes its
    weight row several times larger than the others, and that row sets the int8 scale of every
    output unit (95% of digits test rows kept their class; 100% kept apart)."""
    shape = [None, *preprocessing["input_shape"]]
    outputs = _outputs(model, preprocessing, tf, keep_scaling_apart)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    def serve(x):
        return outputs(x)

    return serve


def _outputs(
    model: Any, preprocessing: dict[str, Any], tf: Any, keep_scaling_apart: bool = False
) -> Callable:
    """Unscaled x -> the run's scaling -> model -> predict's outputs, traced inside a serving function."""
    scaling = preprocessing["scaling"]
    offset = np.asarray(scaling.get("offset", 0.0), dtype=np.float32)
    scale = np.asarray(scaling.get("scale", 1.0), dtype=np.float32)
    scaled = scaling.get("method", "none") != "none"
    classification = preprocessing.get("task", "classification") == "classification"
    labels = np.asarray(preprocessing.get("class_labels") or [])

    def outputs(x):
        inputs = (x - offset) / scale if scaled else x
        if keep_scaling_apart:
            inputs = tf.clip_by_value(inputs, -FLOAT32_MAX, FLOAT32_MAX)
        outputs = model(inputs, training=False)
        if classification and len(labels):
            index = tf.argmax(outputs, axis=-1)
            return {"probabilities": outputs, "predicted": tf.gather(labels, index), "predicted_index": index}
        if classification:
            return {"probabilities": outputs, "predicted": tf.argmax(outputs, axis=-1)}
        return {"values": tf.reshape(outputs, [-1]) if outputs.shape[-1] == 1 else outputs}

    return outputs


def _save(model: Any, serve: Callable, path: Path) -> None:
    """A SavedModel whose `serving_default` signature is `serve` (Keras's export archive: its
    variables are what TFLite's converter freezes into constants)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)


def savedmodel_runner(path: Path, tf: Any) -> Callable:
    """Raw rows -> the SavedModel's outputs by name (its serving signature)."""
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(x: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = x if isinstance(x, dict) else {"x": x}  # a table's cells by input name
        return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in feed.items()}).items()}

    return run


def _tflite_bytes(saved: Path, quantize: str | None, tf: Any) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        # 8-bit weights per output unit, float activations (dynamic-range quantization): it kept
        # the class of every digits test row, where full-integer quantization calibrated on
        # training rows kept 98% (a standardized input's outliers take its one int8 scale)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    from dnnlab.runtime import stderr_silenced

    with stderr_silenced():  # the converter's C++ notes ("fully_quantize: 0, ...")
        return converter.convert()


def tflite_runner(content: bytes, tf: Any) -> Callable:
    """The interpreter, resized to each batch's row count (its signature is for one row)."""
    from dnnlab.runtime import stderr_silenced

    with warnings.catch_warnings(), stderr_silenced():  # deprecation note; XNNPACK's INFO line
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=content)
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    (input_index,) = [d["index"] for d in runner.get_input_details().values()]
    outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
    del runner  # it holds views of the interpreter's buffers, which would forbid resizing
    shape: list[tuple[int, ...]] = [()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if shape[0] != x.shape:
            interpreter.resize_tensor_input(input_index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in outputs.items()}

    return run


def int8_dense_layers(content: bytes, model: Any, tf: Any) -> list[str]:
    """The Dense layers whose kernels the flat buffer holds as int8. The converter leaves a
    kernel under 1,024 weights in float32, so a small output layer stays float. Each Dense layer
    is one FULLY_CONNECTED op, in the model's order."""
    import keras

    from dnnlab.model.keras_private import tflite_dense_kernel_dtypes
    from dnnlab.runtime import stderr_silenced

    with warnings.catch_warnings(), stderr_silenced():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=content)
    kernels = tflite_dense_kernel_dtypes(interpreter)
    dense = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(kernels) != len(dense):  # the converter merged or split some: name the ops instead
        dense = [f"fully_connected_{i}" for i in range(len(kernels))]
    return [name for name, dtype in zip(dense, kernels, strict=True) if dtype == np.int8]


def _onnx_bytes(serve: Callable) -> bytes:
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=ONNX_OPSET)
    return proto.SerializeToString()


def onnx_runner(content: bytes) -> Callable:
    """Raw rows -> the ONNX model's outputs by name, in an onnxruntime CPU session."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    feed = session.get_inputs()[0].name
    return lambda x: dict(
        zip(names, session.run(names, {feed: np.asarray(x, dtype=np.float32)}), strict=True)
    )


# --- verification -----------------------------------------------------------------------------


def _run_outputs(model: Any, rows: _Rows) -> dict[str, np.ndarray]:
    from dnnlab.inference.mc_dropout import deterministic_outputs
    from dnnlab.inference.predict import output_arrays

    return output_arrays(
        deterministic_outputs(model, rows.x), rows.task, rows.preprocessing.get("class_labels")
    )


def _compare(rows: _Rows, reference: dict[str, np.ndarray], outputs: dict[str, Any]) -> dict[str, Any]:
    """Maximum absolute difference, the accuracy (or RMSE) of both models, class agreement."""
    classification = rows.task == "classification"
    key = "probabilities" if classification else "values"
    ours = np.asarray(reference[key], dtype=np.float64)
    theirs = np.asarray(outputs[key], dtype=np.float64).reshape(ours.shape)
    labelled = len(rows.y) if rows.y is not None else 0  # the rows after them are probes
    result: dict[str, Any] = {
        "max_abs_diff": float(np.max(np.abs(ours - theirs))) if len(ours) else 0.0,
        "metric": "accuracy" if classification else "rmse",
        "run_score": None,
        "export_score": None,
        "agreement": None,
        "magnitude": float(np.max(np.abs(ours))) if len(ours) else 0.0,
    }
    if classification:
        # the same label, where the graph maps indices to class labels (runtimes give text as bytes)
        predicted = [
            v.decode() if isinstance(v, bytes) else v for v in np.asarray(outputs["predicted"]).ravel()
        ]
        result["agreement"] = float(np.mean(np.asarray(predicted) == reference["predicted"]))
        if rows.y is not None:
            index = np.asarray(outputs.get("predicted_index", outputs["predicted"])).reshape(-1)[:labelled]
            ours_index = np.asarray(reference.get("predicted_index", reference["predicted"]))[:labelled]
            labels = np.asarray(rows.y).reshape(-1)
            result["run_score"] = float(np.mean(ours_index == labels))
            result["export_score"] = float(np.mean(index == labels))
    elif rows.y is not None:
        labels = np.asarray(rows.y, dtype=np.float64).reshape(ours[:labelled].shape)
        result["run_score"] = float(np.sqrt(np.mean((ours[:labelled] - labels) ** 2)))
        result["export_score"] = float(np.sqrt(np.mean((theirs[:labelled] - labels) ** 2)))
    return result


def single_latency(call: Callable[[], Any], repeats: int = 200, budget: float = 1.0) -> float:
    """Median seconds of one call after a few warm-up calls: `repeats` calls, or as many as fit
    in `budget` seconds (an eager Keras call takes milliseconds)."""
    for _ in range(3):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < repeats and (len(times) < 10 or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# --- writing ----------------------------------------------------------------------------------


def _write(payload: bytes | Path, target: Path) -> int:
    """The verified export into place atomically: a file by rename over the target; a SavedModel
    directory copied beside the target, then renamed into place (an old one swapped out first)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError.of(target.parent, exc) from exc
    if isinstance(payload, bytes):
        atomic_write_bytes(target, payload)
        return len(payload)
    try:
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    except OSError as exc:
        raise WriteError.of(target, exc) from exc
    try:
        shutil.copytree(payload, staging, dirs_exist_ok=True)
        for directory, _, files in os.walk(staging):
            for name in files:
                os.chmod(Path(directory) / name, 0o644)
        os.chmod(staging, 0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.urandom(4).hex()}")
            os.replace(target, old)
        os.replace(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)  # no partial export, and the space back
        if isinstance(exc, OSError):
            raise WriteError.of(target, exc) from exc
        raise
    if old is not None and old.is_symlink():  # a link at the target: replaced, what it points to kept
        with contextlib.suppress(OSError):
            old.unlink()
    elif old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
