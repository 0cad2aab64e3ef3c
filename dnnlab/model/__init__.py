"""The Keras model a spec describes.

`build` (spec -> Sequential, parameter counts, loading), `layers` (custom layers), `optimizers`,
`schedules`, `transfer` (reusing an earlier run's layers), `probe` (per-layer statistics on a probe
batch), `summary`, and `keras_private` (every use of a private Keras attribute). May import
`dnnlab.data`, `dnnlab.rundir`, `dnnlab.spec`, `dnnlab.files` and the base modules.
"""
