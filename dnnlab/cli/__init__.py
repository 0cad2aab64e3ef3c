"""The dnnlab command line: each command parses, calls one library function, renders.

`app` (the Typer app, shared options, one-line errors), `main` (the entry point: the app with every
command registered), and one module per command group: `spec_commands` (check, summary, schema),
`run_commands` (train, sweep), `results_commands` (compare, report, mlflow-log),
`model_commands` (mc-predict, evaluate, predict, export, diagnose, lr-find). Imports library
modules that load TensorFlow only inside the commands that need them.
"""
