"""Reading many runs back: compare, its formats, plots, the HTML report, tracking.

`compare` (loading run directories tolerantly, leaf-key diffs, ranking, seed groups), `formats`
(table, csv, json, markdown), `plots`, `html_report`, `tracking` (MLflow). TensorFlow-free except
where a report reads MC dropout files. May import `dnnlab.inference`, `dnnlab.diagnostics` and
everything below them.
"""
