"""Datasets: from a spec's `data:` section to split, scaled arrays.

`datasets` (describe and load: filters, hold-out, validation split, scaling) reads through one
module per source (`named_sets` with `bundled_sets` and `keras_datasets`, `synthetic`,
`npz_source`, `csv_source`; `source` holds what they share), `user_files` reads the files a user
points at as untrusted input, `input_files` the files of `--data FILE`, `holdout` draws the seeded
test hold-out, and `checked_spec` resolves a spec against its dataset's facts. Tables: `table_files`
(CSV/Parquet read by pandas), `table_columns` (column types and selection), `table_cells`, `tables`
(the fitted encoding recorded in preprocessing.json), `table_source` (a table as a data source,
which `datasets` splits like any other), `penguins` (the Palmer penguins table).
May import `dnnlab.spec`, `dnnlab.files`, `dnnlab.errors`, `dnnlab.runtime`; no TensorFlow at
import.
"""
