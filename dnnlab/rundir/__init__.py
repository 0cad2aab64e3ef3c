"""The run directory: its layout, typed records, the lock, discovery, the one "better" rule.

`layout` (file names, statuses, naming and creating run folders), `records` (run.json and
state.json as typed records), `directory` (`RunDir`), `lock`, `reading` (run files read as
untrusted input), `discovery`, `better` (`metric_mode`, `is_better`), `layers_csv`. May import
`dnnlab.spec`, `dnnlab.files`, `dnnlab.errors`; never TensorFlow or Keras (`compare` reads it).
"""
