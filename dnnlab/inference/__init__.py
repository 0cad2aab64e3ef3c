"""Using a trained run: evaluation, predictions, MC dropout, calibration, export.

`run_inputs` (a run's model file, preprocessing and data splits), `mc_dropout` (sampling),
`mc_predict` (the `dnnlab mc-predict` workflow), `calibration` (TensorFlow-free), `evaluate`,
`predict`, `folding` (the inference copy of a model), `export`, `table_graph` (a table's encoding
as TensorFlow ops, for the SavedModel), and `options` (the values the commands' options accept;
it imports nothing, for the command line's `--help`). May import `dnnlab.training` and everything
below it.
"""
