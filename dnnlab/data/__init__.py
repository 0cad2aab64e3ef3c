"""Datasets: the split and scaling pipeline, one module per source, untrusted files, hold-out, and
tables: `table_files` (reading CSV and Parquet), `table_columns` (features and their types),
`table_cells` (one column's cells), `tables` (the fitted encoding and its record), `penguins` (the
shipped table). May import dnnlab.spec, dnnlab.files and dnnlab.errors; never TensorFlow.

Transitional, until the package layout lands: while dnnlab/data.py still holds the pipeline, this
package would hide it (a package wins over a module of the same name), so it loads that module
under this name and keeps this folder as its package path: `from dnnlab.data import load` and
`dnnlab.data.tables` both work. Once data.py has moved into this package, the bridge does nothing;
then delete it and keep the docstring.
"""

from __future__ import annotations

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

_LEGACY = _Path(__file__).resolve().parent.with_suffix(".py")
if _LEGACY.is_file():
    _spec = _util.spec_from_file_location(
        __name__, _LEGACY, submodule_search_locations=[str(_Path(__file__).resolve().parent)]
    )
    _module = _util.module_from_spec(_spec)
    _sys.modules[__name__] = _module
    _spec.loader.exec_module(_module)
