"""Reading many runs back: compare, its formats, statistics, plots, the HTML report, tracking.

`compare` (leaf-key diffs, ranking, seed groups), `statistics` (intervals and tests between seed
groups; SciPy), `formats` (table, csv, json, markdown), `numbers` (a mean ± std for people),
`fitting` (the terminal tables on a narrow terminal), `plots`, `html_report`, `tracking` (`dnnlab
mlflow-log`), `mc_groups` (`mc-predict` over several runs, per seed group), `options` (compare's
formats; it imports nothing, for `--help`). TensorFlow-free except where a report reads MC dropout
files and where `mc_groups` samples. May import `dnnlab.inference`, `dnnlab.diagnostics` and
everything below them.
"""
