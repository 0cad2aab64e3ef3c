"""The entry point: the app with every command group registered, in the order `--help` lists them."""

from dnnlab.cli import (  # noqa: F401
    cache_commands,
    model_commands,
    results_commands,
    run_commands,
    spec_commands,
)
from dnnlab.cli.app import app

__all__ = ["app"]
