"""Named arrays as CSV: the one writer of the prediction files (`predict --out`, `mc-predict
--out`) and of `predict`'s CSV on stdout, so that every such file reads the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping
from typing import Any


def arrays_csv_text(arrays: Mapping[str, Any], numbered: Collection[str] = ()) -> str:
    """One header row, then one row per instance (the arrays' first axis).

    An array of one value per instance is one column named as the array; a wider one, or one
    named in `numbered` (whose width depends on the model, so its header does not change with
    it), is columns NAME_0, NAME_1, ... Floats are written with 9 significant digits, which
    round-trip a float32; anything else (integers, class labels) as `str` gives it.
    """
    header: list[str] = []
    columns: list[Any] = []
    for name, array in arrays.items():
        table = array.reshape(len(array), -1)
        columns.append(table)
        if table.shape[1] == 1 and name not in numbered:
            header.append(name)
        else:
            header += [f"{name}_{j}" for j in range(table.shape[1])]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row in zip(*(c.tolist() for c in columns)):
        writer.writerow([f"{v:.9g}" if isinstance(v, float) else str(v) for part in row for v in part])
    return text.getvalue()
