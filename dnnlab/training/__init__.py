"""Training a run: setup, the tf.data pipeline, the session, the commit of each epoch, resume.

`lifecycle` (`start`, `resume`: one setup path for new and resumed runs; the finish), `setup`,
`pipeline`, `session` (the fit), `divergence`, `execution` (the execution plan), `checkpoints`,
`faults`, `hparams`, and `callbacks/` (one resumable callback per module). May import
`dnnlab.model`, `dnnlab.data`, `dnnlab.rundir`, `dnnlab.spec`, `dnnlab.files` and the base modules.
"""
