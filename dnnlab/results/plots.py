"""Plots of run directories, drawn with matplotlib's non-interactive Agg backend.

matplotlib is imported inside the functions: commands that draw nothing should not pay for it.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from dnnlab.errors import DnnlabError
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.files.figures import png_bytes, pyplot
from dnnlab.files.folders import check_output_folder
from dnnlab.results.compare import Comparison, SeedGroup
from dnnlab.results.formats import group_label, run_labels
from dnnlab.rundir.loading import NOT_METRICS, LoadedRun

# Room for a legend line at matplotlib's "small" font (8.33 pt): its height, and a character's width.
LEGEND_ROW_INCHES = 0.19
LEGEND_CHAR_INCHES = 0.068
LEGEND_WRAP = 48  # characters per legend line; a longer label wraps onto more lines, whole
PANEL_SIZE = (4.2, 3.2)  # inches per small multiple
PANEL_COLUMNS = 3
LR = "lr"


def plain_text(text: str) -> str:
    """`text` as matplotlib must show it: a run's folder name or a metrics.csv column is the
    user's text, not mathtext, so each `$` is escaped (matplotlib shows `\\$` as `$`); unescaped,
    `a$x$` renders x in italics and `r$\\frac{$` stops the plot with a parse error."""
    return text.replace("$", r"\$")


def plot_learning_curves(
    comparison: Comparison, path: Path, metrics: list[str] | None = None, log_y: bool = False
) -> Path:
    """Write a PNG of learning curves: one panel per metric (validation solid, training dashed).

    `metrics` names the panels (`loss`, `val_accuracy` and `accuracy` alike, `lr`); by default the
    ranked metric and the learning rate. Each run keeps its colour whatever the ranking.
    """
    check_plot_target(path)
    atomic_write_bytes(path, learning_curves_png(comparison, metrics, log_y))
    return path


def check_plot_target(path: Path) -> None:
    """Raise DnnlabError unless the PNG's folder exists and takes new files."""
    check_output_folder(path, "--plot")


def plot_panels(comparison: Comparison, requested: list[str] | None = None) -> list[str]:
    """The panels to draw: base metric names (`loss` stands for loss and val_loss) and `lr`.

    Raises DnnlabError for a requested metric that no run records, listing those that exist.
    """
    recorded = {
        k for run in comparison.runs for k, v in run.history.items() if v and k not in ("epoch", "seconds")
    }
    available = sorted({name.removeprefix("val_") for name in recorded})
    if not available:
        raise DnnlabError("Nothing to plot: no run has a metrics.csv with finished epochs.")
    if requested is None:
        base = comparison.metric.removeprefix("val_")
        wanted = [base] + ([LR] if LR in recorded else [])
        return [name for name in wanted if name in available] or available[:1]
    panels = []
    for name in requested:
        base = name.strip().removeprefix("val_")
        if base not in available:
            raise DnnlabError(
                f"Received --plot-metrics {name.strip()}, which no run records. "
                f"Expected some of: {', '.join(available)} (comma-separated)."
            )
        panels.append(base)
    return list(dict.fromkeys(panels))


def learning_curves_png(
    comparison: Comparison, metrics: list[str] | None = None, log_y: bool = False
) -> bytes:
    """The learning-curve figure as PNG bytes (see `plot_learning_curves`)."""
    return png_bytes(learning_curves_figure(comparison, metrics, log_y))


def learning_curves_figure(comparison: Comparison, metrics: list[str] | None = None, log_y: bool = False):
    """The matplotlib Figure of `learning_curves_png`; the caller closes it."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    panels = plot_panels(comparison, metrics)
    series = _series(comparison)
    legend_lines = sum(label.count("\n") + 1 for _, label, _ in series)
    longest = max((len(line) for _, label, _ in series for line in label.splitlines()), default=0)
    columns = min(PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    legend_width = LEGEND_CHAR_INCHES * longest + 0.8
    size = (
        PANEL_SIZE[0] * columns + legend_width,
        max(PANEL_SIZE[1] * rows + 0.4, LEGEND_ROW_INCHES * (legend_lines + len(series)) + 1.0),
    )
    fig, axes = plt.subplots(rows, columns, figsize=size, dpi=100, layout="constrained", squeeze=False)
    colors = _colors(plt, comparison, series)
    for ax, panel in zip(axes.flat, panels):
        for key, _, members in series:
            _draw(ax, panel, members, colors[key], comparison)
        ax.set_xlabel("epoch")
        ax.set_title(plain_text(_panel_title(panel, comparison)), fontsize="medium")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if log_y or panel == LR and _spans_decades(comparison):
            ax.set_yscale("log", nonpositive="mask")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if series:
        handles = [Line2D([], [], color=colors[key]) for key, _, _ in series]
        labels = [plain_text(label) for _, label, _ in series]
        fig.legend(handles, labels, loc="outside right upper", fontsize="small", frameon=False)
    return fig


def _series(comparison: Comparison) -> list[tuple[str, str, list[LoadedRun]]]:
    """(identity, legend label, runs) per line: each run, or each seed group with its mean."""
    if comparison.groups is not None:
        return [
            (_identity(group.runs), _wrap(f"{group_label(group, comparison)} ({_seeds(group)})"), group.runs)
            for group in comparison.groups
        ]
    labels = run_labels(comparison)
    return [(_identity([run]), _wrap(labels[run.path]), [run]) for run in comparison.runs]


def _seeds(group: SeedGroup) -> str:
    return "1 seed" if len(group.runs) == 1 else f"{len(group.runs)} seeds, mean ± std"


def _identity(runs: list[LoadedRun]) -> str:
    """What a line's colour follows: its run directory's name (for a group, its first)."""
    return min(run.path.name for run in runs)


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, LEGEND_WRAP, break_on_hyphens=False)) or label


def _colors(plt, comparison: Comparison, series: list[tuple[str, str, list[LoadedRun]]]) -> dict[str, object]:
    """A colour per line by the order of the run directories' names, not by rank: the same runs
    get the same colours in every plot, whichever metric ranks them."""
    identities = sorted(key for key, _, _ in series)
    cmap = plt.get_cmap("tab10" if len(identities) <= 10 else "tab20")
    return {key: cmap(i % cmap.N) for i, key in enumerate(identities)}


def _draw(ax, panel: str, members: list[LoadedRun], color, comparison: Comparison) -> None:
    names = [(LR, "-")] if panel == LR else [(f"val_{panel}", "-"), (panel, "--")]
    for name, style in names:
        epochs, mean, std = _mean_curve(members, name)
        if not epochs:
            continue
        ax.plot(epochs, mean, linestyle=style, color=color)
        if std is not None and style == "-":
            low = [m - s for m, s in zip(mean, std)]
            high = [m + s for m, s in zip(mean, std)]
            ax.fill_between(epochs, low, high, color=color, alpha=0.18, linewidth=0)
    best = members[0].best if len(members) == 1 else None
    metric = comparison.metric
    if best and best.value is not None and best.epoch is not None and metric in (f"val_{panel}", panel):
        ax.plot([best.epoch + 1], [best.value], marker="o", color=color)


def _mean_curve(runs: list[LoadedRun], name: str) -> tuple[list[int], list[float], list[float] | None]:
    """Epochs counted from 1, the mean over the runs at each epoch they all reached, and the
    sample std there (None for a single run)."""
    columns = [run.history.get(name) or [] for run in runs]
    length = min(len(c) for c in columns)
    if length == 0:
        return [], [], None
    indices = runs[0].history.get("epoch") or list(range(length))
    epochs = [int(index) + 1 for index in indices[:length]]
    if len(runs) == 1:
        return epochs, columns[0][:length], None
    mean, std = [], []
    for i in range(length):
        values = [c[i] for c in columns]
        m = sum(values) / len(values)
        mean.append(m)
        std.append(math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)))
    return epochs, mean, std


def _panel_title(panel: str, comparison: Comparison) -> str:
    if panel == LR:
        return "learning rate"
    recorded = {name for run in comparison.runs for name in run.history}
    parts = []
    if f"val_{panel}" in recorded:
        parts.append(f"val_{panel} (solid)")
    if panel in recorded and panel not in NOT_METRICS:
        parts.append(f"{panel} (dashed)")
    return ", ".join(parts) or panel


def _spans_decades(comparison: Comparison) -> bool:
    values = [v for run in comparison.runs for v in run.history.get(LR, []) if v > 0 and math.isfinite(v)]
    return bool(values) and max(values) / min(values) >= 10
