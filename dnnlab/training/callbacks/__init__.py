"""The callbacks of a training run, one per module.

`protocol` (the resumable-state protocol every stateful callback follows), `early_stopping`,
`plateau`, `epoch_seeder`, `divergence`, `recorder` (the commit of an epoch), `progress`,
`diagnostics` (layers.csv during training).
"""
