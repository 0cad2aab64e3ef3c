"""Files anyone may have named, read and written safely.

`bounded` reads a path as untrusted input (regular files only, never blocking, capped), `safe_yaml`
is the one YAML reader, `atomic` replaces files atomically (temporary name, fsync, rename),
`array_csv` writes named arrays as CSV (the prediction files) and `folders` checks output folders.
Imports nothing of dnnlab but `dnnlab.errors`; no TensorFlow.
"""
