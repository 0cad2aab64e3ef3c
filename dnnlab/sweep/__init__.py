"""`dnnlab sweep`: families of runs (grid, random draws, seeds, searches) on warm workers, resumable.

`axes` parses the `-g` grammar, `definition` the sweep file, `trials` expands and validates the
trials, `record` keeps the sweep directory and `record_checks` reads sweep.json back as untrusted
input, `trial_dirs` keeps every trial folder inside the sweep directory, `worker` runs trials (one,
or a local pool of warm processes), `ray_executor` runs them as tasks of a Ray cluster,
`executors` names where trials run and the feed they take trials from, `search` drives an Optuna
study (a search that learns) with `rungs` (ASHA and Hyperband's promotions), `progress` reports,
and `runner` ties them together. May import `dnnlab.results` and everything below it.
"""
