"""Datasets: from a spec's `data:` section to split, scaled arrays.

`datasets` (describe and load: splits, class filters, scaling), one reader per source
(`bundled_sets`, `keras_datasets`, `user_files`), `holdout` (the seeded test hold-out) and
`checked_spec` (a spec resolved against its dataset's facts). May import `dnnlab.spec`,
`dnnlab.files`, `dnnlab.errors`, `dnnlab.runtime`; no TensorFlow at import.
"""
