"""The Typer app of the dnnlab command line, its shared options and one-line errors.

TensorFlow is imported only inside the commands that need it, so `--help`, `check`,
`compare` and `schema` start fast. Results go to stdout; progress, notes, warnings and errors
go to stderr through one console (dnnlab.console) that never hard-wraps off a terminal.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dnnlab import runtime
from dnnlab.console import stderr_console
from dnnlab.errors import DnnlabError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", runtime.default_log_level())  # before any TensorFlow import


# typer >= 0.16 vendors click; older releases use click itself.
_click = getattr(typer.core, "_click", None) or __import__("click")


_ClickException = _click.exceptions.ClickException


_NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())


# ---------------------------------------------------------------- output helpers


def fail(message: str, code: int = 2) -> None:
    """One red `error:` line on stderr, then exit with `code`. `message` is rich markup."""
    stderr_console().print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def print_warning(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {escape_markup(message)}")


def print_warnings(findings) -> None:
    for finding in findings:
        if finding.level == "warning":
            print_warning(str(finding))


def choices(name: str, values: Iterable[str]) -> type[enum.Enum]:
    """A str Enum of the values a library constant lists, for a typer option: the CLI offers
    exactly what the library accepts, and `--help` and a bad value's one-line error list them."""
    return enum.Enum(name, {value: value for value in values}, type=str)


def user_errors(command: Callable) -> Callable:
    """Turn a DnnlabError into one red line on stderr and exit code 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DnnlabError as exc:
            fail(escape_markup(str(exc)), exc.exit_code)

    return wrapper


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A bad option or argument is one `error:` line and exit code 2, like dnnlab's own errors,
    instead of click's usage block or typer's boxed panel."""
    try:
        yield
    except _ClickException as exc:
        if isinstance(exc, _NoArgsIsHelpError):  # `dnnlab` alone prints the help
            raise
        fail(escape_markup(exc.format_message()), exc.exit_code)


class _OneLineErrorsGroup(TyperGroup):
    def make_context(self, *args: Any, **kwargs: Any):
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


class _WarningLines(logging.Handler):
    """The library reports through the `dnnlab` logger; the CLI shows each record as a warning
    line on whatever stderr is current (a stream bound once would outlive a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        print_warning(record.getMessage())


class _ProcessApp(typer.Typer):
    """The app as a process runs it (the `dnnlab` script, `python -m dnnlab`): after a command
    that imported TensorFlow the process ends without the interpreter's teardown (see
    runtime.exit_without_teardown). Tests invoke the command through CliRunner, not this."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            from dnnlab.runtime import exit_without_teardown

            exit_without_teardown(exc.code)
            raise


# ---------------------------------------------------------------- the app and shared options

app = _ProcessApp(
    cls=_OneLineErrorsGroup,
    help="Run deep-learning training experiments from YAML specs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        "-o",
        help="Override a key by its dotted path, e.g. -o training.epochs=5 (value parsed as YAML).",
    ),
]


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


RankMetric = Annotated[
    str | None, typer.Option("--metric", help="Rank by this metric (default: the one the runs monitor).")
]


ReachOption = Annotated[
    str | None,
    typer.Option(
        "--reach", help="A column of the epochs each run took to reach METRIC=VALUE, e.g. val_accuracy=0.95."
    ),
]


QuietFlag = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress or status lines: only warnings, errors and the result."),
]


def print_version(value: bool) -> None:
    if value:
        from dnnlab import __version__

        print(f"dnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Run deep-learning training experiments from YAML specs."""
    logger = logging.getLogger("dnnlab")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines())
        logger.setLevel(logging.INFO)
