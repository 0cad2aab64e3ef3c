"""Why a network trains as it does: per-layer verdicts, `dnnlab diagnose`, `dnnlab lr-find`.

`verdicts` (TensorFlow-free: the verdicts from layers.csv rows, and a finished run's diagnosis),
`diagnose` (a spec measured at initialization and after some steps: TensorFlow), `plot` (the
Glorot & Bengio figure), `lr_finder`. May import `dnnlab.training` and everything below it.
"""
