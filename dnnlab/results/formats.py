"""`dnnlab compare` output: the rows every format shares, and the table, csv, json and
markdown renderings of a `Comparison`. Kept apart from `compare`, which finds, reads and
ranks the runs, so each side can change without the other.

Seed groups tested by `seed_tests.attach` carry `group.test` and `comparison.tests`; this module
reads them (their `cells`, `as_dict`, `line`) without importing seed_tests, which imports it for
the groups' labels."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from dnnlab.errors import DnnlabError
from dnnlab.results import fitting
from dnnlab.results.compare import Comparison, SeedGroup, Stat, stat_of, unused_keys
from dnnlab.results.numbers import format_interval, format_stat
from dnnlab.results.options import FORMATS
from dnnlab.rundir.loading import MISSING, UNKNOWN, Absent, LoadedRun

# ---------------------------------------------------------------- rows shared by every format


def table_rows(comparison: Comparison, diff_only: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Headers and one row per run (or per seed group) with raw values, best first.

    Values are str, int, float, Stat, a spec value, MISSING (not recorded) or UNKNOWN (config.yaml
    unreadable); each renderer formats them for its medium.
    """
    keys = comparison.differing_keys + ([] if diff_only else comparison.context_keys)
    finals = list(dict.fromkeys(k for r in comparison.runs for k in r.final))
    tests = list(dict.fromkeys(k for r in comparison.runs for k in r.test))
    best_col = f"best_{comparison.metric}"
    rows = []
    if comparison.groups is None:
        for rank, run in enumerate(comparison.runs, 1):
            final = run.final
            rows.append(
                {
                    "rank": rank,
                    "run": run.path.name,
                    "status": run.status,
                    "epochs": run.epochs,
                    best_col: _recorded(run.best.value),
                    "best_epoch": _recorded(run.best.epoch),
                    **{f"final_{m}": final.get(m, MISSING) for m in finals},
                    **{f"test_{m}": run.test.get(m, MISSING) for m in tests},
                    **_reach_cells(comparison, [run]),
                    "wall_seconds": _recorded(run.wall_seconds),
                    **_spec_cells(run, keys),
                    "notes": "; ".join(run.notes),
                }
            )
    else:
        for rank, group in enumerate(comparison.groups, 1):
            runs = group.runs
            statuses = Counter(r.status for r in runs)
            rows.append(
                {
                    "rank": rank,
                    "run": group_label(group, comparison),
                    "seeds": len(runs),
                    "status": ", ".join(f"{s} {n}" for s, n in statuses.items())
                    if len(statuses) > 1
                    else runs[0].status,
                    "epochs": stat_of([r.epochs for r in runs]),
                    best_col: group.best,
                    "best_epoch": stat_of([r.best.epoch for r in runs]),
                    **_test_cells(comparison, group),
                    **{f"final_{m}": stat_of([r.final.get(m) for r in runs]) for m in finals},
                    **{f"test_{m}": stat_of([r.test.get(m) for r in runs]) for m in tests},
                    **_reach_cells(comparison, runs),
                    "wall_seconds": stat_of([r.wall_seconds for r in runs]),
                    **_spec_cells(runs[0], keys),
                    "notes": "; ".join(dict.fromkeys(n for r in runs for n in r.notes)),
                }
            )
    headers = list(rows[0]) if rows else []
    if "notes" in headers and not any(row["notes"] for row in rows):
        headers.remove("notes")
    return headers, rows


def _test_cells(comparison: Comparison, group: SeedGroup) -> dict[str, Any]:
    """The interval and test columns of a tested seed group (n, mean, std, ci_low, ..., verdict)."""
    if comparison.tests is None or group.test is None:
        return {}
    return {k: _recorded(v) for k, v in group.test.cells(comparison.tests.delta).items()}


def _reach_cells(comparison: Comparison, runs: list[LoadedRun]) -> dict[str, Any]:
    """The --reach columns: epochs to the threshold (a count, so from 1 in every format); for a
    seed group the mean over the seeds that reached it, and how many seeds did (`seeds_reached`,
    beside `seeds`)."""
    if comparison.reach is None:
        return {}
    if comparison.groups is None:
        return {comparison.reach.column: _recorded(runs[0].reached)}
    epochs = stat_of([r.reached for r in runs])
    return {comparison.reach.column: epochs, SEEDS_REACHED: epochs.n}


SEEDS_REACHED = "seeds_reached"  # --reach with --group-seeds: the seeds of a group that met the target


def _recorded(value: Any) -> Any:
    return MISSING if value is None else value


def counted_from_one(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for people: `best_epoch` counts from 1, as the progress lines do. csv and json keep
    metrics.csv's 0-based index, which programs join on."""
    return [{**row, "best_epoch": _plus_one(row["best_epoch"])} for row in rows]


def _plus_one(epoch: Any) -> Any:
    if isinstance(epoch, Stat):
        return epoch if epoch.mean is None else Stat(epoch.mean + 1, epoch.std, epoch.n)
    return epoch if isinstance(epoch, Absent) else epoch + 1


def _spec_cells(run: LoadedRun, keys: list[str]) -> dict[str, Any]:
    if run.config is None:
        return {k: UNKNOWN for k in keys}
    return {k: run.params.get(k, MISSING) for k in keys}


def format_value(value: Any) -> str:
    """Short human text for a table cell: metrics to 4 significant digits, a mean ± std as
    `format_stat` says, specs compactly."""
    if isinstance(value, Absent):
        return value.label
    if isinstance(value, Stat):
        return format_stat(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return _spec_text(value)


def _spec_text(value: Any) -> str:
    """A spec value on one line: `elu(alpha=1.0)` for a typed mapping, `[300, 100]` for a list."""
    if isinstance(value, dict):
        kind = value.get("type")
        inner = ", ".join(f"{k}={_spec_text(v)}" for k, v in value.items() if k != "type" and v is not None)
        if kind is None:
            return inner
        return f"{kind}({inner})" if inner else str(kind)
    if isinstance(value, list):
        return "[" + ", ".join(_spec_text(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------- renderers


def render_json(comparison: Comparison) -> str:
    """One JSON object: runs, differing_keys, best_run (plus groups under --group-seeds)."""
    out: dict[str, Any] = {
        "metric": comparison.metric,
        "mode": comparison.mode,
        "runs": [_run_json(r, comparison.differing_keys) for r in comparison.runs],
        "differing_keys": comparison.differing_keys,
        "best_run": str(comparison.best_run.path) if comparison.best_run else None,
        "skipped": [str(p) for p in comparison.skipped],
    }
    if comparison.groups is not None:
        out["groups"] = [_group_json(g, comparison) for g in comparison.groups]
    if comparison.tests is not None:
        out["tests"] = comparison.tests.as_dict()
    if comparison.reach is not None:
        out["reach"] = {"metric": comparison.reach.metric, "threshold": comparison.reach.threshold}
    return json.dumps(_finite(out), indent=2, allow_nan=False)


def _run_json(run: LoadedRun, keys: list[str]) -> dict[str, Any]:
    return {
        "run": str(run.path),
        "name": run.name,
        "status": run.status,
        "epochs": run.epochs,
        "epochs_planned": run.epochs_planned,
        "best": {"metric": run.best.metric, "value": run.best.value, "epoch": run.best.epoch},
        "final": run.final,
        "test": run.test or None,
        "epochs_to_reach": run.reached,
        "wall_seconds": run.wall_seconds,
        "params": {k: _json_value(run.params.get(k, MISSING)) for k in keys} if run.config else None,
        "notes": run.notes,
    }


def _group_json(group: SeedGroup, comparison: Comparison) -> dict[str, Any]:
    finals = list(dict.fromkeys(k for r in group.runs for k in r.final))
    best = group.best
    return {
        "runs": [str(r.path) for r in group.runs],
        "seeds": group.seeds,
        "n": len(group.runs),
        "status": dict(Counter(r.status for r in group.runs)),
        "best": {"metric": comparison.metric, "mean": best.mean, "std": best.std, "n": best.n},
        "final": {m: _stat_json(stat_of([r.final.get(m) for r in group.runs])) for m in finals},
        "params": {k: _json_value(group.params.get(k, MISSING)) for k in comparison.differing_keys}
        if group.runs[0].config
        else None,
        **({"reach": _reach_json(group, comparison)} if comparison.reach is not None else {}),
        **(group.test.as_dict() if group.test is not None else {}),
    }


def _reach_json(group: SeedGroup, comparison: Comparison) -> dict[str, Any]:
    """A seed group's --reach: how many of its seeds met the target, and in how many epochs."""
    epochs = stat_of([r.reached for r in group.runs])
    return {
        "metric": comparison.reach.metric,
        "threshold": comparison.reach.threshold,
        "seeds_reached": epochs.n,
        "seeds": len(group.runs),
        "epochs": _stat_json(epochs),
    }


def _stat_json(stat: Stat) -> dict[str, Any]:
    return {"mean": stat.mean, "std": stat.std, "n": stat.n}


def _json_value(value: Any) -> Any:
    return None if value is MISSING else value


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: a diverged run's nan loss becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render_csv(comparison: Comparison, diff_only: bool = False) -> str:
    """The table as CSV with full-precision numbers; a seed group's stat gives X and X_std."""
    headers, rows = table_rows(comparison, diff_only)
    stat_cols = {h for h in headers if any(isinstance(r[h], Stat) for r in rows)}
    out_headers = [name for h in headers for name in ((h, f"{h}_std") if h in stat_cols else (h,))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(out_headers)
    for row in rows:
        cells: list[Any] = []
        for h in headers:
            value = row[h]
            if h in stat_cols:
                cells.extend(_csv_stat(value))
            else:
                cells.append(_csv_value(value))
        writer.writerow(cells)
    return buffer.getvalue()


def _csv_stat(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, Stat):
        return (_csv_value(value), "")
    return tuple("" if v is None else repr(v) for v in (value.mean, value.std))


def _csv_value(value: Any) -> Any:
    if isinstance(value, Absent):
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return value
    return format_value(value)


def render_markdown(comparison: Comparison, diff_only: bool = False) -> str:
    """The table as a GitHub markdown table; the best run's name is bold."""
    headers, rows = table_rows(comparison, diff_only)
    rows = counted_from_one(rows)
    best = comparison.best_run is not None
    lines = [
        "| " + " | ".join(map(_md_text, headers)) + " |",
        "|" + "|".join(_md_align(h) for h in headers) + "|",
    ]
    for i, row in enumerate(rows):
        cells = [_md_text(format_value(row[h])) for h in headers]
        if i == 0 and best:
            cells[headers.index("run")] = f"**{cells[headers.index('run')]}**"
        lines.append("| " + " | ".join(cells) + " |")
    if comparison.tests is not None:
        lines += ["", *(f"- {line}" for line in group_sentences(comparison))]
    return "\n".join(lines) + "\n"


def _md_text(text: str) -> str:
    """A header or cell inside a markdown table row: a `|` would end the cell and a line break
    the row (metric columns and spec values come from files a user may have edited)."""
    return " ".join(text.replace("|", "\\|").splitlines())


def _md_align(header: str) -> str:
    return " ---: " if is_numeric_column(header) else " --- "


NUMERIC_TEST_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high", "p_value", "difference")
TEST_COLUMNS = (
    *NUMERIC_TEST_COLUMNS,
    *("verdict", "test", "difference_ci_low", "difference_ci_high", "seeds_needed", "seeds_to_separate"),
)


def is_numeric_column(header: str) -> bool:
    """Whether a comparison column holds numbers (right-aligned in markdown and HTML tables)."""
    return (
        header
        in (
            "rank",
            "seeds",
            "epochs",
            "best_epoch",
            "wall_seconds",
            "seeds_needed",
            "seeds_to_separate",
            SEEDS_REACHED,
        )
        or header.startswith(("best_", "final_", "test_", "epochs_to_", "difference_"))
        or header in NUMERIC_TEST_COLUMNS
    )


def render_table(comparison: Comparison, diff_only: bool = False, width: int | None = None):
    """The comparison for the terminal: a table of results (best run highlighted), then a
    table of what differs between the runs, keyed by the same rank.

    Two tables because one would not fit: spec values are long and terminals are narrow, and
    squeezing both into one folds every cell. The telling keys that every run shares are listed
    under the tables instead of as columns of one repeated value (csv/markdown keep them).

    `width`: the terminal's, to fit the tables to (see `fitting`); None off a terminal, where
    every column is shown at its full width.
    """
    from rich.console import Group

    headers, rows = table_rows(comparison, diff_only=True)
    rows = counted_from_one(rows)
    spec_headers = [h for h in headers if "." in h]
    result_headers = [h for h in headers if "." not in h and h not in TEST_COLUMNS]
    direction = "lower" if comparison.mode == "min" else "higher"
    title = (
        f"{len(rows)} {'seed groups' if comparison.groups else 'runs'} ranked by "
        f"{comparison.metric} ({direction} is better)"
    )
    columns = _terminal_columns(result_headers)
    parts = [_rich_table(rows, columns, comparison, title)]
    if width is not None and fitting.natural_width(parts[0]) > width:
        fold = fitting.text_width(width)

        def fitted(kept):
            return _rich_table(rows, kept, comparison, title, fold=fold)

        table, dropped = fitting.fit_columns(columns, fitted, width, comparison.metric)
        parts = [table] + ([fitting.left_out_note(dropped, width)] if dropped else [])
    if spec_headers:
        parts.append(_differences(rows, spec_headers, comparison, width))
    if not diff_only and comparison.context_keys:
        shared = next((r.params for r in comparison.runs if r.config is not None), {})
        from rich.text import Text

        parts.append(
            Text(
                "same in every run: "
                + ", ".join(f"{k}={format_value(shared.get(k, MISSING))}" for k in comparison.context_keys)
            )
        )
    if comparison.tests is not None:
        parts += _tests_part(comparison)
    return Group(*parts)


def group_sentences(comparison: Comparison) -> list[str]:
    """A sentence per tested group but the best: the difference, its interval, p, the verdict."""
    delta = comparison.tests.delta
    return [
        g.test.line(delta)
        for g in comparison.groups
        if g.test is not None and g.test.result.verdict != "best"
    ]


def _tests_part(comparison: Comparison) -> list:
    """The seed groups against the best for the terminal: a table narrow enough for 80 columns
    (mean ± std, the interval, the verdict), a sentence per group under it, then the method."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    tests = comparison.tests
    if all(len(group.runs) < 2 for group in comparison.groups):  # nothing to test: only the note
        return [Text("".join(f"note: {note}\n" for note in tests.notes))]
    table = Table(
        title=f"is the difference real? {comparison.metric} {tests.where}",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("group", overflow="fold")
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("mean ± std", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for rank, group in enumerate(comparison.groups, 1):
        r = group.test.result
        interval = format_interval(r.ci_low, r.ci_high, r.std, r.mean)
        cells = [str(rank), r.name, str(r.n), format_value(Stat(r.mean, r.std, r.n)), interval, r.verdict]
        table.add_row(*map(Text, cells), style="bold green" if r.verdict == "best" else None)
    parts: list = [Text(""), table]  # a blank line after the tables above
    lines = Text()
    for line in group_sentences(comparison):
        lines.append(f"{line}\n")
    lines.append(tests.method + "\n", style="dim")
    for note in tests.notes:
        lines.append("note: ", style="yellow")
        lines.append(note + "\n")
    parts.append(lines)
    return parts


MAX_DIFF_COLUMNS = 4  # beyond this a table of spec values folds every cell; list them instead


def _differences(rows, spec_headers: list[str], comparison: Comparison, width: int | None = None):
    """What differs, per run: a table while it stays narrow (and fits `width`, on a terminal),
    else one line per run."""
    from rich.text import Text

    short = _short_names(spec_headers)
    legend = "\n".join(f"{short[h]} = {h}" for h in spec_headers if short[h] != h)
    if len(spec_headers) <= MAX_DIFF_COLUMNS:
        columns = [("rank", ("rank",)), ("run", ("run",))] + [(h, (h,)) for h in spec_headers]
        titles = {h: short[h] for h in spec_headers}
        table = _rich_table(rows, columns, comparison, "what differs", legend, titles)
        if width is None or fitting.natural_width(table) <= width:
            return table
        table = _rich_table(
            rows, columns, comparison, "what differs", legend, titles, fitting.text_width(width)
        )
        if fitting.natural_width(table) <= width:
            return table
    text = Text("what differs\n", style="italic")
    for i, row in enumerate(rows):
        values = ", ".join(f"{short[h]}={format_value(row[h])}" for h in spec_headers)
        text.append(f"{row['rank']:>3}  {row['run']}: ", style="bold green" if i == 0 else "bold")
        text.append(values + "\n")
    return text


LARGE_TABLE_ROWS = 100  # rich's table layout costs ~0.3 ms a row; past this, plain columns


def _rich_table(
    rows, columns, comparison: Comparison, title: str, caption: str = "", titles=None, fold: int | None = None
):
    """`fold`: fitting a terminal, the widest the text columns (run, notes, spec values) may be;
    their cells fold within it, and numbers are never folded."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if len(rows) > LARGE_TABLE_ROWS:
        return _plain_table(rows, columns, comparison, title, caption, titles, fold)
    table = Table(title=title, caption=caption or None, header_style="bold", box=box.SIMPLE_HEAD)
    for title_, _ in columns:
        numeric = not _is_text_column(title_)
        table.add_column(
            (titles or {}).get(title_) or _terminal_header(title_, comparison.metric),
            justify="right" if numeric else "left",
            style="yellow" if title_ == "notes" else None,
            overflow="fold",
            no_wrap=fold is not None and numeric,
            max_width=fold if fold is not None and _is_text_column(title_) and title_ != "seed" else None,
        )
    for i, row in enumerate(rows):
        best = i == 0 and comparison.best_run is not None
        cells = [" / ".join(format_value(row[h]) for h in parts) for _, parts in columns]
        # Text, not str: a spec value such as `[bold]` must not be read as rich markup.
        table.add_row(*map(Text, cells), style="bold green" if best else None)
    return table


def _plain_table(rows, columns, comparison: Comparison, title: str, caption: str, titles=None, fold=None):
    """The same table as fixed-width text: a thousand runs render in milliseconds, not a second.
    `fold`: fitting a terminal, text cells longer than this are cut, ending in `…`."""
    from rich.text import Text

    names = [
        ((titles or {}).get(t) or _terminal_header(t, comparison.metric)).replace("\n", " ")
        for t, _ in columns
    ]
    cells = [[" / ".join(format_value(row[h]) for h in parts) for _, parts in columns] for row in rows]
    left = [_is_text_column(t) for t, _ in columns]
    if fold is not None:
        cells = [[c if not is_left or len(c) <= fold else c[: fold - 1] + "…" for c, is_left in zip(r, left)]
                 for r in cells]  # fmt: skip
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        padded = (v.ljust(w) if is_left else v.rjust(w) for v, w, is_left in zip(values, widths, left))
        return "  ".join(padded).rstrip()

    text = Text(no_wrap=True, overflow="ignore")
    text.append(title + "\n", style="italic")
    text.append(line(names) + "\n", style="bold")
    text.append("  ".join("-" * w for w in widths) + "\n")
    for i, row_cells in enumerate(cells):
        best = i == 0 and comparison.best_run is not None
        text.append(line(row_cells) + "\n", style="bold green" if best else None)
    if caption:
        text.append(caption + "\n", style="dim")
    return text


def _is_text_column(title: str) -> bool:
    """Whether a terminal column holds words (left-aligned; folded to fit) rather than numbers."""
    return "." in title or title in ("run", "status", "notes", "seed")


def _terminal_columns(headers: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Terminal columns as (title, source headers): a final train metric and its validation
    twin share one `train / val` column to save width."""
    columns = []
    present = set(headers)
    for header in headers:
        twin = "final_val_" + header.removeprefix("final_")
        if header.startswith("final_val_") and header.replace("final_val_", "final_", 1) in present:
            continue
        if header.startswith("final_") and twin in present:
            columns.append((header + " (train/val)", (header, twin)))
        else:
            columns.append((header, (header,)))
    return columns


def _terminal_header(header: str, metric: str) -> str:
    """Two short lines instead of one long name, so narrow terminals keep the numbers whole."""
    if header == "rank":
        return "#"
    if header == f"best_{metric}":
        return f"best\n{metric}"
    if header in ("best_epoch", "wall_seconds", SEEDS_REACHED):
        return header.replace("_", "\n").replace("seconds", "s")
    if header.startswith("final_"):
        name = header.removeprefix("final_")
        return "final " + name.replace(" (train/val)", "\ntrain / val") if "(" in name else "final\n" + name
    if header.startswith("test_"):
        return "test\n" + header.removeprefix("test_")
    if "." in header:  # a dotted spec key breaks at its dots, never inside a word
        return header.replace(".", ".\n")
    return header


def render(comparison: Comparison, fmt: str, diff_only: bool = False) -> str:
    """The comparison as csv, json or markdown text (the terminal table is `render_table`)."""
    if fmt == "json":
        return render_json(comparison) + "\n"
    if fmt == "csv":
        return render_csv(comparison, diff_only)
    if fmt == "markdown":
        return render_markdown(comparison, diff_only)
    raise DnnlabError(f"Received --format {fmt}, expected one of: {', '.join(FORMATS)}.")


def group_label(
    group: SeedGroup, comparison: Comparison | None, keys: list[str] | None = None, values: dict | None = None
) -> str:
    """A seed group's label: what differs between the groups (`activation=elu(alpha=0.5),
    learning_rate=0.01`), or the spec's name where nothing but the seed differs; `keys`: only
    these of the differing keys (without a comparison: the differing keys themselves); `values`:
    shown in place of the group's own."""
    run = group.runs[0]
    keys = (comparison.differing_keys if comparison else []) if keys is None else keys
    if run.config is None or not keys:
        return run.name
    return _label(keys, run.params if values is None else values, unused_keys(run.config))


def run_labels(comparison: Comparison) -> dict[Path, str]:
    """A short legend label per run naming what differs, e.g. `activation=elu, seed=1`."""
    keys = list(comparison.differing_keys)
    if comparison.groups is not None:
        keys.append("seed")  # grouped runs differ in seed only: the legend must still say which
    labels = {}
    for run in comparison.runs:
        if run.config is None or not keys:
            labels[run.path] = run.path.name
            continue
        values = {**run.params, "seed": run.config.get("seed", MISSING)}
        labels[run.path] = _label(keys, values, unused_keys(run.config))
    return labels


def _label(keys: list[str], values: dict[str, object], unused: set[str] = frozenset()) -> str:
    """`activation=relu, learning_rate=0.01`: the keys a run has and uses (elu's `alpha` is left
    out of a relu run's label rather than shown as `alpha=-`, and so is a learning_rate that the
    run's schedule overrides)."""
    short = _short_names(keys)
    shown = [k for k in keys if values.get(k, MISSING) is not MISSING and k not in unused]
    return ", ".join(f"{short[k]}={format_value(values[k])}" for k in shown)


def _short_names(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares (`type` says nothing alone,
    so `model.activation.type` reads `activation`)."""
    trimmed = {key: key.removesuffix(".type") for key in keys}
    names = {}
    for key, name in trimmed.items():
        parts = name.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            others = (o for k, o in trimmed.items() if k != key)
            if not any(o == suffix or o.endswith("." + suffix) for o in others):
                break
        names[key] = suffix
    return names
