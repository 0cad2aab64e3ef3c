"""`python -m dnnlab ...` runs the command line, as the `dnnlab` script does."""

from dnnlab.cli.main import app

app(prog_name="dnnlab")
