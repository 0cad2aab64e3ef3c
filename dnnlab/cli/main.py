"""The entry point: the app with every command group registered, in the order `--help` lists them."""

from dnnlab.cli import model_commands, results_commands, run_commands, spec_commands  # noqa: F401
from dnnlab.cli.app import app

__all__ = ["app"]
