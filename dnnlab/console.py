"""Rich consoles for dnnlab's human output: lines are never hard-wrapped where no terminal shows them.

Rich wraps at the terminal's width, and without a terminal (a pipe, CI, a test) at $COLUMNS or
80 columns, which breaks a message with a long path across lines. Off a terminal these consoles
have no width to fit, so every line and table keeps its natural width.
"""

from __future__ import annotations

import sys

from rich.console import Console

UNLIMITED = 100_000  # the width off a terminal: wider than any line dnnlab prints


def stderr_console() -> Console:
    """The console for progress, notes, warnings and errors."""
    return _console(stderr=True)


def stdout_console() -> Console:
    """The console for a command's result where that result is a table."""
    return _console(stderr=False)


def fit_width(console: Console) -> int | None:
    """The width a table printed on `console` should fit: the terminal's; None off a terminal,
    where lines keep their natural width."""
    return None if console.width >= UNLIMITED else console.width


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if _is_terminal(stream) else UNLIMITED
    return Console(stderr=stderr, width=width, soft_wrap=True, highlight=False, emoji=False)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
