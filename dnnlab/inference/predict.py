"""`dnnlab predict`: a run's outputs for a file of inputs, as .csv or .npz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnlab.errors import PredictError
from dnnlab.files.array_csv import arrays_csv_text
from dnnlab.files.atomic import atomic_write_bytes, npz_bytes
from dnnlab.files.folders import check_output_folder
from dnnlab.inference.run_inputs import find_run, model_file, prediction_set

OUTPUT_SUFFIXES = (".csv", ".npz")


@dataclass(frozen=True)
class Prediction:
    run: Path
    source: str
    task: str
    arrays: dict[str, np.ndarray]  # predicted [+ predicted_index] + probabilities, or values
    written: Path | None

    @property
    def instances(self) -> int:
        return len(next(iter(self.arrays.values())))

    def to_json(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "data": self.source,
            "task": self.task,
            "instances": self.instances,
            "out": str(self.written) if self.written else None,
            **{name: array.tolist() for name, array in self.arrays.items()},
        }


def predict(run_dir: Path, data: Path, out: Path | None = None) -> Prediction:
    """The run's final model on the examples of a .npz/.csv file, one output row per input row:
    classification gives `predicted` and `probabilities`, regression `values`. `predicted` is the
    class's label where preprocessing.json has class labels (a CSV target of text, a subset of
    classes), with `predicted_index` beside it; else the class index."""
    if out is not None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise PredictError(
            f"--out {out}: expected a file name ending in .csv or .npz; "
            f"received {Path(out).suffix or 'no suffix'!r}"
        )
    if out is not None:
        check_output_folder(out, "--out")
    run = find_run(run_dir)
    dataset = prediction_set(run, str(data), labelled=False)
    from dnnlab import runtime

    runtime.quiet_tensorflow()
    from dnnlab.inference.mc_dropout import deterministic_outputs
    from dnnlab.model.build import load_model

    model = load_model(model_file(run), compile=False)
    outputs = deterministic_outputs(model, dataset.x)
    labels = run.read_json(run.preprocessing).get("class_labels")
    arrays = output_arrays(outputs, dataset.task or "classification", labels)
    written = None
    if out is not None:
        write_predictions(arrays, Path(out))
        written = Path(out)
    return Prediction(run.path, dataset.source, dataset.task or "classification", arrays, written)


def output_arrays(outputs: np.ndarray, task: str, class_labels: list | None = None) -> dict[str, np.ndarray]:
    """What `predict` returns (and an exported model computes) from the model's outputs."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if task == "classification":
        index = np.argmax(outputs, axis=-1).astype("int64")
        if not class_labels:
            return {"predicted": index, "probabilities": outputs}
        labels = np.asarray(class_labels)[index]
        return {"predicted": labels, "predicted_index": index, "probabilities": outputs}
    return {"values": outputs.reshape(len(outputs)) if outputs.shape[1:] == (1,) else outputs}


def write_predictions(arrays: dict[str, np.ndarray], path: Path) -> None:
    """`.npz` (one array per name) or `.csv` (one row per instance), written atomically."""
    data = npz_bytes(arrays) if path.suffix.lower() == ".npz" else arrays_csv_text(arrays).encode()
    atomic_write_bytes(path, data)  # a refused write: one line naming the file, exit 1
