"""`dnnlab sweep`: families of runs (grid, random draws, seeds) on warm workers, resumable.

`axes` parses the `-g` grammar, `definition` the sweep file, `trials` expands and validates the
trials, `record` keeps the sweep directory, `worker` runs trials (one, or a local pool of warm
processes), `ray_executor` runs them as tasks of a Ray cluster, `executors` names where trials
run, and `runner` ties them together. Nothing is imported here, so the command line can read
`executors.EXECUTORS` without loading the rest.
"""
