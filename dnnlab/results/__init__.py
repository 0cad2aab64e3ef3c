"""Results: comparing runs and seed groups, the statistics behind "is the win real?", formats,
plots, the HTML report and tracking. May import the layers below it (inference, diagnostics,
training, model, data, rundir, spec, files, errors), never the sweep or the CLI.
"""
