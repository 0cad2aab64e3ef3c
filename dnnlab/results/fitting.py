"""Fitting compare's terminal tables to a terminal narrower than they are.

Rich shares a narrow terminal's width out among the columns and folds every cell to fit, which
turns `0.1961 ± 0.0436` into three lines of digits. On a terminal, a table wider than it instead
leaves out its least telling columns, one at a time, until it fits, and a line under it says which
and where to see them. Off a terminal (a pipe, CI, a test) nothing is fitted: the console there has
no width (`console.fit_width` is None) and every column is printed, as before.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

# Kept whatever the width: without them a row says nothing.
KEPT = ("rank", "run", "notes")

Column = tuple[str, tuple[str, ...]]  # (title, the row keys it shows), as formats builds them


def text_width(width: int) -> int:
    """The widest a text column (a run's name, its notes, a spec value) may be in a table fitted to
    `width`: its cells fold within it, a name or a value over two or three lines, readable still."""
    return max(16, width // 3)


def natural_width(renderable: Any) -> int:
    """The columns `renderable` takes when nothing limits it."""
    from rich.console import Console
    from rich.measure import Measurement

    from dnnlab.console import UNLIMITED

    console = Console(file=io.StringIO(), width=UNLIMITED)
    return Measurement.get(console, console.options, renderable).maximum


def drop_order(titles: list[str], metric: str) -> list[str]:
    """The titles in the order they are left out: time and epoch counts first, then the final and
    test metrics (the last first), the status, the best epoch and the --reach columns; the ranked
    metric's best value, the rank, the run and its notes never."""
    best = f"best_{metric}"
    kept = [t for t in titles if t in KEPT or t == best]
    first = [t for t in ("wall_seconds", "epochs") if t in titles]
    finals = [t for t in reversed(titles) if t.startswith("final_")]
    tests = [t for t in reversed(titles) if t.startswith("test_")]
    late = [t for t in titles if t in ("status", "best_epoch", "seeds_reached")]
    late += [t for t in titles if t.startswith("epochs_to_")] + [t for t in titles if t == "seeds"]
    order = first + finals + tests + late
    return order + [t for t in titles if t not in order and t not in kept]


def fit_columns(
    columns: list[Column], build: Callable[[list[Column]], Any], width: int, metric: str
) -> tuple[Any, list[str]]:
    """`build(columns)` with columns left out, in `drop_order`, until it is at most `width` wide;
    and the titles left out. Stops when only the kept columns are left (rich folds those)."""
    table = build(columns)
    dropped: list[str] = []
    for title in drop_order([t for t, _ in columns], metric):
        if natural_width(table) <= width:
            break
        columns = [c for c in columns if c[0] != title]
        dropped.append(title)
        table = build(columns)
    return table, dropped


def left_out_note(dropped: list[str], width: int):
    """The line under a fitted table: what was left out, and how to see it."""
    from rich.text import Text

    return Text(
        f"left out to fit the terminal's {width} columns: {', '.join(dropped)}; `dnnlab compare "
        "... --format csv` (or json) shows every column, as does a wider terminal\n",
        style="dim",
    )
